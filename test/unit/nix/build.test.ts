import { describe, expect, it } from "vitest";
import { archivedPaths, buildLocally, buildOnHost, sendFlake } from "../../../src/nix/build";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeRunner, local, remote } from "../helpers/fakeRunner";
import { drvPath, fleetErrorOf, runtimeDir, storePath, target } from "../helpers/fixtures";

const flakeSource = storePath("source");
const nixpkgs = storePath("nixpkgs-source");
const flakeUtils = storePath("flake-utils-source");
const system = storePath("nixos-system-alpha");

const connectionFor = (runner: FakeRunner, user = "root") =>
    new SshConnection(target({ user }), { runner: runner.run, runtimeDir: runtimeDir() });

describe("buildLocally", () => {
    it("realises the derivation with nix-store --realise", async () => {
        const runner = new FakeRunner().on(local("nix-store"), {});
        await buildLocally(runner.run, drvPath("nixos-system-alpha"), "alpha");
        expect(runner.calls.map((call) => call.argv)).toEqual([["nix-store", "--realise", drvPath("nixos-system-alpha")]]);
    });

    it("a failing build is a build-phase error with the reproducing command", async () => {
        const runner = new FakeRunner().on(local("nix-store"), { code: 1, stderr: "error: builder for '/nix/store/x.drv' failed with exit code 2\n" });
        const error = await fleetErrorOf(buildLocally(runner.run, drvPath("s"), "alpha"));
        expect(error.phase).toBe("build");
        expect(error.host).toBe("alpha");
        expect(error.hint).toContain(`nix-store --realise ${drvPath("s")}`);
        expect(error.detail).toContain("failed with exit code 2");
    });
});

describe("archivedPaths", () => {
    it("collects the flake's own path and every (nested) input's path", () => {
        const paths = archivedPaths({
            path: flakeSource,
            inputs: { nixpkgs: { path: nixpkgs, inputs: {} }, utils: { path: flakeUtils, inputs: { systems: { path: storePath("systems-source") } } } },
        });
        expect(paths).toEqual([flakeSource, nixpkgs, flakeUtils, storePath("systems-source")]);
    });

    it("skips entries without a store path", () => {
        expect(archivedPaths({ path: "/home/me/infra", inputs: { nixpkgs: { path: nixpkgs } } })).toEqual([nixpkgs]);
        expect(archivedPaths({})).toEqual([]);
    });
});

describe("sendFlake", () => {
    const archive = JSON.stringify({ path: flakeSource, inputs: { nixpkgs: { path: nixpkgs, inputs: {} } } });

    it("archives the flake locally, then copies its paths to the host over the master; returns the flake's path", async () => {
        const runner = new FakeRunner().on(local("flake", "archive"), { stdout: archive }).on(local("copy"), {});
        const connection = connectionFor(runner);
        expect(await sendFlake(runner.run, connection, "/srv/infra")).toBe(flakeSource);
        const [archiveCall, copyCall] = runner.localCalls();
        expect(archiveCall!.argv.slice(3)).toEqual(["flake", "archive", "--json", "/srv/infra"]);
        expect(copyCall!.argv.slice(3)).toEqual(["copy", "--no-check-sigs", "--to", "ssh-ng://root@alpha.example.org", flakeSource, nixpkgs]);
        expect(copyCall!.options.env?.NIX_SSHOPTS).toBe(connection.nixSshOpts());
    });

    it("a flake that cannot be archived is a build-phase error naming it", async () => {
        const runner = new FakeRunner().on(local("flake", "archive"), { code: 1, stderr: "error: getting status of '/srv/nope': No such file or directory\n" });
        const error = await fleetErrorOf(sendFlake(runner.run, connectionFor(runner), "/srv/nope"));
        expect(error.phase).toBe("build");
        expect(error.message).toBe("could not archive the flake /srv/nope");
        expect(error.detail).toContain("No such file");
        expect(runner.matching(local("copy"))).toHaveLength(0);
    });

    it("a failed copy of the flake is a copy-phase error", async () => {
        const runner = new FakeRunner().on(local("flake", "archive"), { stdout: archive }).on(local("copy"), { code: 1, stderr: "error: unexpected end-of-file\n" });
        const error = await fleetErrorOf(sendFlake(runner.run, connectionFor(runner), "/srv/infra"));
        expect(error.phase).toBe("copy");
        expect(error.message).toBe("sending the flake /srv/infra to the host failed");
    });
});

describe("buildOnHost", () => {
    const built = JSON.stringify([{ drvPath: drvPath("nixos-system-alpha"), outputs: { out: system } }]);

    it("builds the flake's toplevel on the host as root (sudo for a deploy user) and returns the out path", async () => {
        const runner = new FakeRunner().on(remote("nix"), { stdout: built });
        expect(await buildOnHost(connectionFor(runner, "deploy"), flakeSource, "nixosConfigurations.alpha")).toBe(system);
        const call = runner.matching(remote("nix"))[0]!;
        expect(call.viaSudo).toBe(true);
        expect(call.remoteCommand).toEqual([
            "nix", "--extra-experimental-features", "nix-command flakes",
            "build", "--no-link", "--json", `path:${flakeSource}#nixosConfigurations.alpha.config.system.build.toplevel`,
        ]);
    });

    it("a failed build on the host is a build-phase error with Nix's output", async () => {
        const runner = new FakeRunner().on(remote("nix"), { code: 1, stderr: "error: builder failed\n" });
        const error = await fleetErrorOf(buildOnHost(connectionFor(runner), flakeSource, "nixosConfigurations.alpha"));
        expect(error.phase).toBe("build");
        expect(error.host).toBe("alpha");
        expect(error.message).toBe("building the system on the host failed");
        expect(error.detail).toContain("builder failed");
    });

    it("output without a store path is also a failure", async () => {
        const runner = new FakeRunner().on(remote("nix"), { stdout: JSON.stringify([{ outputs: {} }]) });
        const error = await fleetErrorOf(buildOnHost(connectionFor(runner), flakeSource, "nixosConfigurations.alpha"));
        expect(error.message).toBe("building the system on the host failed");
    });
});
