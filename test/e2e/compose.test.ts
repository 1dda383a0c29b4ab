// examples/compose, run as a user would: the packed nixos-fleet installed into a separate Pulumi
// project that creates servers (sandbox hosts behind a resource) and deploys NixOS onto each with
// Host, taking the servers' address, port and host key as Outputs.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runProcess } from "../../src/process/runner";
import { ROOT } from "./helpers/fleetProject";

const packDir = mkdtempSync(join(tmpdir(), "nf-pack-"));
afterAll(() => rmSync(packDir, { recursive: true, force: true }));

describe("examples/compose", () => {
    it("npm pack, then the example installs the tarball, previews, deploys two servers, checks them and destroys", async () => {
        const pack = await runProcess(["npm", "pack", "--pack-destination", packDir], { cwd: ROOT, timeoutMs: 120_000 });
        expect(pack.code, pack.stderr).toBe(0);
        const tarball = join(packDir, pack.stdout.trim().split("\n").pop()!);
        const run = await runProcess([join(ROOT, "examples", "compose", "run"), tarball, ROOT], {
            cwd: ROOT,
            timeoutMs: 280_000,
            env: { ...process.env, SANDBOX_PORT_BASE: "16200" },
        });
        const output = run.stdout + run.stderr;
        expect(run.code, output).toBe(0);
        expect(output).toMatch(/web1: address, hostKey, identityFile, port are not known until .* deployed once its server exists/);
        expect(output).toMatch(/\[compose\] web1 deployed: \/nix\/store\/[a-z0-9]{32}-nixos-system-web1-/);
        expect(output).toMatch(/\[compose\] web2 deployed: \/nix\/store\/[a-z0-9]{32}-nixos-system-web2-/);
        expect(output).toMatch(/\[compose\] done/);
    }, 300_000);
});
