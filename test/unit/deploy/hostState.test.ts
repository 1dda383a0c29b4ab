import { describe, expect, it } from "vitest";
import { parseHostState, readHostState } from "../../../src/deploy/hostState";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeRunner, remote } from "../helpers/fakeRunner";
import { fleetErrorOf, runtimeDir, storePath, target } from "../helpers/fixtures";

const gen3 = storePath("nixos-system-alpha-3");
const gen2 = storePath("nixos-system-alpha-2");

describe("parseHostState", () => {
    it("reads generation, profile, running and booted system and the NixOS version", () => {
        const state = parseHostState(
            [`profile=system-3-link`, `profilePath=${gen3}`, `current=${gen3}`, `booted=${gen2}`, "version=24.11.20250101.abcdef (Vicuna)", ""].join("\n"),
        );
        expect(state).toEqual({
            generation: 3,
            profileStorePath: gen3,
            currentStorePath: gen3,
            bootedStorePath: gen2,
            nixosVersion: "24.11.20250101.abcdef (Vicuna)",
        });
    });

    it("a host without a system profile yet has no generation and no profile path", () => {
        const state = parseHostState(["profile=", "profilePath=", `current=${gen2}`, `booted=${gen2}`, "version="].join("\n"));
        expect(state.generation).toBeUndefined();
        expect(state.profileStorePath).toBeUndefined();
        expect(state.currentStorePath).toBe(gen2);
        expect(state.nixosVersion).toBeUndefined();
    });

    it("ignores a profile link that is not a generation link", () => {
        const state = parseHostState([`profile=/somewhere/else`, `profilePath=${gen3}`].join("\n"));
        expect(state.generation).toBeUndefined();
        expect(state.profileStorePath).toBeUndefined();
    });

    it("missing /run links (or ones outside the store) are undefined", () => {
        const state = parseHostState(["profile=system-12-link", `profilePath=${gen3}`, "current=", "booted=/run/booted-system"].join("\n"));
        expect(state.generation).toBe(12);
        expect(state.currentStorePath).toBeUndefined();
        expect(state.bootedStorePath).toBeUndefined();
    });

    it("keeps '=' inside values and ignores unrelated lines", () => {
        const state = parseHostState(["motd: welcome", "version=a=b", "=oops"].join("\n"));
        expect(state.nixosVersion).toBe("a=b");
        expect(state.generation).toBeUndefined();
    });
});

describe("readHostState", () => {
    it("reads everything with one fixed sh -c script, without sudo", async () => {
        const runner = new FakeRunner().on(remote("sh", "-c"), { stdout: `profile=system-2-link\nprofilePath=${gen2}\ncurrent=${gen2}\n` });
        const connection = new SshConnection(target({ user: "deploy" }), { runner: runner.run, runtimeDir: runtimeDir() });
        const state = await readHostState(connection);
        expect(state).toMatchObject({ generation: 2, profileStorePath: gen2, currentStorePath: gen2 });
        const call = runner.matching(remote("sh", "-c"))[0]!;
        expect(call.viaSudo).toBe(false);
        expect(call.remoteCommand![2]).toContain("readlink -f /run/current-system");
    });

    it("a failing read is a read-phase error", async () => {
        const runner = new FakeRunner().on(remote("sh", "-c"), { code: 1, stderr: "fish: Unknown command\n" });
        const connection = new SshConnection(target(), { runner: runner.run, runtimeDir: runtimeDir() });
        const error = await fleetErrorOf(readHostState(connection));
        expect(error.phase).toBe("read");
        expect(error.host).toBe("alpha");
        expect(error.detail).toContain("fish");
    });
});
