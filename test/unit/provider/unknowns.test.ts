import { describe, expect, it } from "vitest";
import type { EngineLogger, Severity } from "../../../src/provider/engineLog";
import { HostProvider } from "../../../src/provider/hostProvider";
import { UNKNOWN, checkFailures, pendingMessage, unknownKeys } from "../../../src/provider/unknowns";
import { FakeRunner } from "../helpers/fakeRunner";
import { drvPath, runtimeDir, storePath } from "../helpers/fixtures";

const HOST_URN = "urn:pulumi:dev::compose::nixos:index:Host::web1";
const HOOK_URN = "urn:pulumi:dev::compose::nixos:index:Host$nixos:index:Hook::web1-migrate";

class Logger implements EngineLogger {
    readonly lines: { severity: Severity; message: string }[] = [];
    async log(severity: Severity, _urn: string, message: string): Promise<void> {
        this.lines.push({ severity, message });
    }
}

function setup() {
    const runner = new FakeRunner();
    const logger = new Logger();
    return { runner, logger, provider: new HostProvider({ runner: runner.run, logger, version: "0.0.0-test", runtimeDir: runtimeDir() }) };
}

/** A Host whose server is created in the same program: address, port and hostKey are Outputs. */
const pendingHost = () => ({
    name: "web1",
    address: UNKNOWN,
    port: UNKNOWN,
    hostKey: UNKNOWN,
    user: "root",
    flake: "/srv/infra",
    attribute: "nixosConfigurations.web1",
    buildOn: "local",
    action: "switch",
    substituteOnDestination: false,
    tags: [],
    confirmTimeout: 30,
    storePath: storePath("nixos-system-web1-1"),
    drvPath: drvPath("nixos-system-web1-1"),
});

describe("inputs not known yet (Outputs of resources still to be created)", () => {
    it("unknownKeys finds top-level and nested unknowns", () => {
        expect(unknownKeys({ a: 1, b: UNKNOWN, c: [1, UNKNOWN], d: { e: UNKNOWN }, f: "x" })).toEqual(["b", "c", "d"]);
        expect(unknownKeys({ a: 1, b: "text" })).toEqual([]);
    });

    it("checkFailures keeps failures of known inputs only", () => {
        const issues = [
            { path: ["port"], message: "expected number" },
            { path: ["storePath"], message: "must be a Nix store path" },
        ];
        expect(checkFailures(issues, ["port"])).toEqual([{ property: "storePath", reason: "must be a Nix store path" }]);
    });

    it("check accepts a host whose address, port and host key are unknown, says it deploys once its server exists, and still checks the rest", async () => {
        const { provider, logger } = setup();
        const news = pendingHost();
        expect(await provider.check(HOST_URN, {}, news)).toEqual({ inputs: news });
        expect(logger.lines.map((l) => l.message)).toEqual([pendingMessage("web1", ["address", "port", "hostKey"])]);
        expect(logger.lines[0]!.message).toMatch(/^web1: address, port, hostKey are not known until .* deployed once its server exists$/);
        const bad = await provider.check(HOST_URN, {}, { ...news, storePath: "/tmp/x" });
        expect(bad.failures?.map((f) => f.property)).toEqual(["storePath"]);
    });

    it("check says so also when only string inputs are unknown (the sentinel is a valid string)", async () => {
        const { provider, logger } = setup();
        const news = { ...pendingHost(), port: 22, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" };
        expect(await provider.check(HOST_URN, {}, news)).toEqual({ inputs: news });
        expect(logger.lines.map((l) => l.message)).toEqual([pendingMessage("web1", ["address"])]);
    });

    it("check of a fully known host says nothing about servers", async () => {
        const { provider, logger } = setup();
        await provider.check(HOST_URN, {}, { ...pendingHost(), address: "10.0.0.5", port: 22, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" });
        // (A host new to the stack gets its plan as an info line: nothing else.)
        expect(logger.lines.filter((line) => !line.message.startsWith("web1: plan"))).toEqual([]);
        expect(logger.lines.map((line) => line.message).join("\n")).not.toMatch(/server/);
    });

    it("diff of a host with unknown inputs is a change (an update in place), without touching the host", async () => {
        const { provider, runner } = setup();
        const result = await provider.diff("web1", HOST_URN, { ...pendingHost(), address: "10.0.0.5", port: 22, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" }, pendingHost());
        expect(result.changes).toBe(true);
        expect(result.replaces).toEqual([]);
        expect(runner.calls).toEqual([]);
    });

    it("a hook on such a host is accepted too, but its unknown-free bad inputs are not", async () => {
        const { provider } = setup();
        const hook = { name: "web1", address: UNKNOWN, user: "root", hook: "migrate", command: ["true"], trigger: UNKNOWN };
        expect(await provider.check(HOOK_URN, {}, hook)).toEqual({ inputs: hook });
        const bad = await provider.check(HOOK_URN, {}, { ...hook, command: [] });
        expect(bad.failures?.map((f) => f.property)).toEqual(["command"]);
    });
});
