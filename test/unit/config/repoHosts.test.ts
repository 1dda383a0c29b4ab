// The sandbox fleet's real host files, as the dev stack uses them.
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { loadHostFiles, parseStackConfig, resolveStackHosts } from "../../../src/config";

const projectRoot = path.resolve(__dirname, "../../..");

describe("hosts/ of this repository", () => {
    it("loads alpha, beta and gamma for the dev stack", async () => {
        const all = await loadHostFiles(path.join(projectRoot, "hosts"));
        const sandbox = all.filter((host) => ["alpha", "beta", "gamma"].includes(host.name));
        expect(sandbox.map((host) => host.name)).toEqual(["alpha", "beta", "gamma"]);
        const stack = parseStackConfig({ hosts: ["@sandbox"], defaults: { sshConfigFile: ".sandbox/ssh_config" } }, { baseDir: projectRoot });
        const hosts = resolveStackHosts(all, stack);
        for (const host of hosts) {
            expect(host).toMatchObject({
                address: host.name,
                flake: `path:${path.join(projectRoot, ".sandbox/flake")}`,
                attribute: `nixosConfigurations.${host.name}`,
                sshConfigFile: path.join(projectRoot, ".sandbox/ssh_config"),
            });
            expect(host.tags).toContain("sandbox");
            expect(host.declared.port).toBeUndefined(); // the ssh_config alias supplies the port
        }
        expect(resolveStackHosts(all, { ...stack, hosts: ["@web"] }).map((host) => host.name)).toEqual(["alpha", "beta"]);
    });
});
