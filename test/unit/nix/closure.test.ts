import { describe, expect, it } from "vitest";
import { localClosure, missingOnHost } from "../../../src/nix/closure";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeRunner, local, masterStart, remote } from "../helpers/fakeRunner";
import { fleetErrorOf, runtimeDir, storePath, target } from "../helpers/fixtures";

const system = storePath("nixos-system-alpha");
const glibc = storePath("glibc-2.39");

describe("localClosure", () => {
    it("reads Nix 2.8's list format", async () => {
        const runner = new FakeRunner().on(local("path-info"), {
            stdout: JSON.stringify([
                { path: system, narSize: 1000, references: [glibc] },
                { path: glibc, narSize: 30_000, references: [] },
            ]),
        });
        expect(await localClosure(runner.run, system)).toEqual([
            { path: system, narSize: 1000 },
            { path: glibc, narSize: 30_000 },
        ]);
        expect(runner.calls[0]!.argv).toEqual(["nix", "--extra-experimental-features", "nix-command flakes", "path-info", "--json", "--recursive", system]);
    });

    it("reads newer Nix's object format keyed by path", async () => {
        const runner = new FakeRunner().on(local("path-info"), {
            stdout: JSON.stringify({ [system]: { narSize: 1000 }, [glibc]: { narSize: 30_000, deriver: null } }),
        });
        expect(await localClosure(runner.run, system)).toEqual([
            { path: system, narSize: 1000 },
            { path: glibc, narSize: 30_000 },
        ]);
    });

    it("counts a path without narSize as 0 bytes", async () => {
        const runner = new FakeRunner().on(local("path-info"), { stdout: JSON.stringify([{ path: system }]) });
        expect(await localClosure(runner.run, system)).toEqual([{ path: system, narSize: 0 }]);
    });

    it("a path missing from the local store is a copy-phase error naming it", async () => {
        const runner = new FakeRunner().on(local("path-info"), { code: 1, stderr: `error: path '${system}' is not valid\n` });
        const error = await fleetErrorOf(localClosure(runner.run, system, "alpha"));
        expect(error.phase).toBe("copy");
        expect(error.host).toBe("alpha");
        expect(error.message).toBe(`${system} is not in the local store`);
        expect(error.detail).toContain("is not valid");
    });
});

describe("missingOnHost", () => {
    const connection = (runner: FakeRunner) => new SshConnection(target({ user: "deploy" }), { runner: runner.run, runtimeDir: runtimeDir() });

    it("asks the host's store once (without sudo) and returns the invalid paths", async () => {
        const runner = new FakeRunner().on(remote("nix-store"), { stdout: `${glibc}\n\n` });
        expect(await missingOnHost(connection(runner), [system, glibc])).toEqual([glibc]);
        const calls = runner.matching(remote("nix-store"));
        expect(calls).toHaveLength(1);
        expect(calls[0]!.remoteArgv).toEqual(["nix-store", "--check-validity", "--print-invalid", system, glibc]);
        expect(calls[0]!.viaSudo).toBe(false);
    });

    it("does not connect at all for no paths", async () => {
        const runner = new FakeRunner();
        expect(await missingOnHost(connection(runner), [])).toEqual([]);
        expect(runner.calls).toHaveLength(0);
    });

    it("a failing query is a copy-phase error for the host", async () => {
        const runner = new FakeRunner().on(remote("nix-store"), { code: 127, stderr: "sh: nix-store: command not found\n" });
        const error = await fleetErrorOf(missingOnHost(connection(runner), [system]));
        expect(error.phase).toBe("copy");
        expect(error.host).toBe("alpha");
        expect(error.message).toBe("could not query the host's Nix store");
        expect(error.detail).toContain("command not found");
        expect(runner.matching(masterStart)).toHaveLength(1);
    });
});
