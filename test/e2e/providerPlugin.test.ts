// The provider plugin the engine starts (bin/pulumi-resource-nixos) serves gRPC both from the
// compiled dist/ and, when the sources are newer, from the sources through ts-node.
import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { runProcess } from "../../src/process/runner";
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

describe("the plugin's schema", () => {
    it("`pulumi package get-schema ./bin/pulumi-resource-nixos` prints the package with Host and Hook", async () => {
        const result = await runProcess(["pulumi", "package", "get-schema", "./bin/pulumi-resource-nixos"], { cwd: ROOT, timeoutMs: 60_000 });
        expect(result.code, result.stderr).toBe(0);
        const schema = JSON.parse(result.stdout) as { name: string; version: string; resources: Record<string, { inputProperties: Record<string, unknown>; properties: Record<string, unknown> }> };
        expect(schema.name).toBe("nixos");
        expect(schema.version).toBe(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
        expect(Object.keys(schema.resources).sort()).toEqual(["nixos:index:Hook", "nixos:index:Host"]);
        const host = schema.resources["nixos:index:Host"]!;
        expect(Object.keys(host.inputProperties)).toEqual(expect.arrayContaining(["address", "port", "hostKey", "storePath", "flake", "attribute"]));
        expect(Object.keys(host.properties)).toEqual(expect.arrayContaining(["generation", "history", "lastDeploy"]));
    });
});
