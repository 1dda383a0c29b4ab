// Fleet.create registers the hosts before the provider has answered and waits for the evaluation
// cache's writes after registering: a stale provider's warning must not wait for either (its
// checks may fail the run, and end the program, right after the registration).
import * as pulumi from "@pulumi/pulumi";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Fleet } from "../../../src/program/fleetResources";
import { PROVIDER_INFO_TOKEN } from "../../../src/provider/providerInfo";
import { resetProviderStart } from "../../../src/resources/providerStart";
import { FakeRunner, local } from "../helpers/fakeRunner";
import { storePath } from "../helpers/fixtures";

const registered: string[] = [];

beforeAll(() => {
    resetProviderStart();
    pulumi.runtime.setMocks(
        {
            newResource: (args) => {
                registered.push(args.name);
                return { id: `${args.name}-id`, state: { ...args.inputs, generation: 1 } };
            },
            // The provider serving the stack is an older one than the program.
            call: (args) => (args.token === PROVIDER_INFO_TOKEN ? { version: "0.0.1-stale" } : {}),
        },
        "nixos-fleet",
        "dev",
        true,
    );
});

afterAll(() => resetProviderStart());

describe("Fleet.create", () => {
    it("warns of a stale provider as soon as it answers, not only after the evaluation cache's write", { timeout: 20_000 }, async () => {
        const root = mkdtempSync(join(tmpdir(), "nf-fleet-create-"));
        const warn = vi.spyOn(pulumi.log, "warn").mockImplementation(async () => undefined);
        try {
            mkdirSync(join(root, "hosts"));
            writeFileSync(join(root, "hosts", "psi.yaml"), "address: psi.lab\nflake: path:/srv/infra\n");
            let metadataReads = 0;
            let release!: () => void;
            const held = new Promise<void>((resolve) => (release = resolve));
            const fake = new FakeRunner()
                .on(local("flake", "metadata"), () => ({ stdout: JSON.stringify({ locked: { narHash: "sha256-v1", type: "path" }, locks: { nodes: { root: {} }, root: "root", version: 7 } }) }))
                .on(local("eval", "--json"), () => ({ stdout: JSON.stringify({ psi: { out: storePath("nixos-system-psi"), drv: `${storePath("nixos-system-psi")}.drv` } }) }));
            // The metadata read after the evaluation (before the cache entry is written) waits for the test.
            const runner: typeof fake.run = async (argv, options) => {
                if (argv.includes("metadata") && ++metadataReads >= 2) await held;
                return fake.run(argv, options);
            };
            let done = false;
            const created = Fleet.create({ projectRoot: root, stackName: "dev", runner, env: { PULUMI_CONFIG: JSON.stringify({ "nixos-fleet:hosts": '["psi"]' }), NIXOS_FLEET_CACHE_DIR: join(root, "cache") } }).finally(() => (done = true));
            const stale = () => warn.mock.calls.some(([message]) => String(message).includes("the nixos provider serving this stack is version 0.0.1-stale"));
            // Until the warning is out and the cache's write is held (its metadata read waits for
            // the test), in either order; up to 10 s, for a loaded machine.
            for (let i = 0; i < 1000 && !(stale() && metadataReads >= 2); i++) await new Promise((resolve) => setTimeout(resolve, 10));
            expect(metadataReads).toBe(2);
            expect(registered).toContain("psi");
            expect(done).toBe(false);
            expect(stale()).toBe(true);
            release();
            await created;
        } finally {
            warn.mockRestore();
            rmSync(root, { recursive: true, force: true });
        }
    });
});
