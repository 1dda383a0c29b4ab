// The library's Host (src/resources/host.ts) as a program registers it: defaults filled in, and
// secret files' values sent as secrets even when the program passed them plain, so they are
// encrypted in the state and [secret] in a preview (Fleet wraps them itself; a library user
// calling `new Host` directly must get the same).
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { Host } from "../../../src/resources/host";
import { Hook } from "../../../src/resources/hook";
import { SECRET_SIG } from "../../../src/provider/secretMarkers";

const registered = new Map<string, Record<string, unknown>>();
/** What the program sent, in order: its calls (invokes) and its registrations. */
const sent: string[] = [];

beforeAll(() => {
    pulumi.runtime.setMocks(
        {
            newResource: (args) => {
                registered.set(args.name, args.inputs as Record<string, unknown>);
                sent.push(`register ${args.name}`);
                return { id: `${args.name}-id`, state: args.inputs };
            },
            call: (args) => (sent.push(`call ${args.token} ${JSON.stringify(args.inputs)}`), { version: "0.0.0" }),
        },
        "consumer",
        "dev",
        true,
    );
});

const isSecret = (value: unknown): boolean =>
    value !== null && typeof value === "object" && Object.values(value as Record<string, unknown>).includes(SECRET_SIG);

const system = { flake: ".", attribute: "nixosConfigurations.web1", storePath: `/nix/store/${"a".repeat(32)}-nixos-system-web1` };
const file = { path: "/run/keys/db", owner: "root", group: "root", mode: "0400", uploadAt: "pre-activation" as const };

async function register(name: string, args: ConstructorParameters<typeof Host>[1]): Promise<Record<string, unknown>> {
    const host = new Host(name, args);
    await new Promise((resolve) => host.urn.apply(resolve));
    const inputs = registered.get(name);
    if (!inputs) throw new Error(`${name} was not registered`);
    return inputs;
}

describe("Host (the library's resource)", () => {
    it("asks the provider's version (saying the run is a preview) before its registration, once per run, in any program", async () => {
        await register("first", { ...system, address: "first.example.org" });
        await register("second", { ...system, address: "second.example.org" });
        const asked = sent.filter((entry) => entry.startsWith("call "));
        expect(asked).toEqual(['call nixos:index:providerInfo {"dryRun":true}']);
        expect(sent.indexOf(asked[0]!)).toBeLessThan(sent.indexOf("register first"));
    });

    it("fills in the host-file defaults and the name", async () => {
        const inputs = await register("web1", { ...system, address: "192.0.2.1" });
        expect(inputs).toMatchObject({ name: "web1", user: "root", buildOn: "local", action: "switch", substituteOnDestination: false, tags: [] });
    });

    it("sends each secret file's value as a secret", async () => {
        // (The mock monitor reports a nested secret as its top-level property being secret.)
        const inputs = await register("web2", { ...system, address: "192.0.2.2", secrets: { db: { ...file, value: "hunter2" } } });
        expect(isSecret(inputs.secrets)).toBe(true);
        expect((inputs.secrets as { value: unknown }).value).toEqual({ db: { ...file, value: "hunter2" } });
        // The other inputs stay plain.
        expect(isSecret(inputs.address)).toBe(false);
    });

    it("takes what the docs say may be left out, and Outputs inside mappings and lists (type-checked: npm run typecheck)", async () => {
        // Before: HostArgs was typed with the provider's parsed values, so every health-check list,
        // a secret file's owner/group/mode/uploadAt were required and a secret's value could not be
        // an Output (config.requireSecret): programs needed casts.
        const inputs = await register("web4", {
            ...system,
            address: pulumi.output("192.0.2.4"),
            healthChecks: { units: ["web.service"], tcp: [{ port: pulumi.output(443) }] },
            secrets: { db: { path: "/run/keys/db", value: pulumi.secret("hunter2") } },
            tags: [pulumi.output("web")],
        });
        expect(inputs).toMatchObject({ address: "192.0.2.4", healthChecks: { units: ["web.service"], tcp: [{ port: 443 }] }, tags: ["web"] });
        expect(isSecret(inputs.secrets)).toBe(true);
        expect((inputs.secrets as { value: unknown }).value).toEqual({ db: { path: "/run/keys/db", value: "hunter2" } });
    });

    it("a Hook's args, too, are what its check reads: user may be left out, Outputs inside lists (type-checked)", async () => {
        const hook = new Hook("web5-migrate", { name: "web5", address: "192.0.2.5", hook: "migrate", command: ["migrate", pulumi.output("--all")], trigger: pulumi.output("1:/nix/store/x") });
        await new Promise((resolve) => hook.urn.apply(resolve));
        expect(registered.get("web5-migrate")).toMatchObject({ name: "web5", command: ["migrate", "--all"], trigger: "1:/nix/store/x" });
    });

    it("makes secrets given as an Output a secret as a whole", async () => {
        const inputs = await register("web3", { ...system, address: "192.0.2.3", secrets: pulumi.output({ db: { ...file, value: "hunter2" } }) });
        expect(isSecret(inputs.secrets)).toBe(true);
    });
});
