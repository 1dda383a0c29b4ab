// The real Pulumi CLI built by scripts/bootstrap: pinned version, and the dev stack's preview
// runs with no network at all (inside a network namespace that has only loopback).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runProcess } from "../../src/process/runner";
import { SandboxFleet } from "../../sandbox/fleet";
import { ROOT } from "./helpers/fleetProject";

const pulumiEnv = (): Record<string, string> => ({
    PATH: `${join(ROOT, ".tools", "bin")}:${process.env.PATH ?? ""}`,
    PULUMI_HOME: join(ROOT, ".tools", "pulumi-home"),
    PULUMI_BACKEND_URL: `file://${join(ROOT, ".pulumi-state")}`,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_NODEJS_TRANSPILE_ONLY: "true",
    PULUMI_CONFIG_PASSPHRASE_FILE: join(ROOT, "scripts", "dev-passphrase"),
});

describe("pulumi toolchain", () => {
    it("is the version pinned for @pulumi/pulumi", async () => {
        const result = await runProcess(["pulumi", "version"], { env: pulumiEnv() });
        expect(result.code).toBe(0);
        const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
        // The library's programs bring their own @pulumi/pulumi (a peer); the repository pins its own.
        expect(result.stdout.trim()).toBe(`v${pkg.devDependencies["@pulumi/pulumi"]}`);
    });

    describe("dev stack", () => {
        const fleet = new SandboxFleet();
        let started: string[] = [];
        beforeAll(async () => {
            // The dev stack evaluates the default sandbox's flake; hosts this test starts, it stops.
            const running = new Set((await fleet.status()).filter((h) => h.running).map((h) => h.name));
            started = ["alpha", "beta", "gamma"].filter((name) => !running.has(name));
            await fleet.start(["alpha", "beta", "gamma"]);
        });
        afterAll(async () => {
            if (started.length) await fleet.stop(started);
        });

        it("previews offline: no network but loopback", async () => {
            // A fresh network namespace has only a loopback interface, so any download or update
            // check would fail the preview.
            const result = await runProcess(
                [
                    "unshare", "--net", "--",
                    "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                    "pulumi", "preview", "-s", "dev", "--non-interactive",
                ],
                { cwd: ROOT, env: pulumiEnv() },
            );
            expect(result.stderr).not.toMatch(/download|update check/i);
            expect(result.code, result.stdout + result.stderr).toBe(0);
            expect(result.stdout).toMatch(/nixos-fleet-dev/);
        });
    });
});
