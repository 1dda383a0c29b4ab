// The provider plugin the engine starts (bin/pulumi-resource-nixos) serves gRPC both from the
// compiled dist/ and, when the sources are newer, from the sources through ts-node.
import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { existsSync } from "node:fs";
import { ROOT } from "./helpers/fleetProject";

/** Starts the plugin and returns the first line it prints (the engine reads its port from it). */
function firstLine(env: Record<string, string>): Promise<string> {
    return new Promise((resolve, reject) => {
        const child = spawn(join(ROOT, "bin", "pulumi-resource-nixos"), [], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (chunk: Buffer) => {
            out += chunk.toString();
            if (out.includes("\n")) {
                child.kill("SIGKILL");
                resolve(out.split("\n")[0]!);
            }
        });
        child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
        child.on("exit", (code) => {
            if (!out.includes("\n")) reject(new Error(`the plugin exited (${code}) without printing a port: ${err}`));
        });
    });
}

describe("bin/pulumi-resource-nixos", () => {
    it("runs the compiled provider that bootstrap built", async () => {
        expect(existsSync(join(ROOT, "dist", "src", "provider", "main.js"))).toBe(true);
        expect(await firstLine({})).toMatch(/^\d+$/);
    });

    it("runs from the sources when asked (as it does when a source is newer than the build)", async () => {
        expect(await firstLine({ NIXOS_FLEET_PROVIDER_FROM_SOURCE: "1" })).toMatch(/^\d+$/);
    });
});
