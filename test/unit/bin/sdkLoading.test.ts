// The program and the operator commands load only the parts of the Pulumi SDK they use: its index
// (closure serialization, npm's arborist, the TypeScript compiler) costs most of a second at every
// start. Checked in a fresh Node.js process (ts-node loads TypeScript itself, so the sign looked
// for is npm's arborist, which only the SDK's index brings).
import { describe, expect, it } from "vitest";
import { runProcess } from "../../../src/process/runner";
import { resolve } from "node:path";

const ROOT = resolve(__dirname, "../../..");

async function loadedModules(script: string): Promise<{ arborist: boolean; ok: boolean }> {
    const result = await runProcess(["node", "-r", "ts-node/register/transpile-only", "-e", `${script}; const keys = Object.keys(require.cache); console.log(JSON.stringify({ arborist: keys.some((k) => k.includes("@npmcli/arborist")), ok: true }));`], { cwd: ROOT, timeoutMs: 60_000 });
    if (result.code !== 0) throw new Error(result.stderr);
    return JSON.parse(result.stdout.trim().split("\n").pop()!) as { arborist: boolean; ok: boolean };
}

describe("what a start loads of the Pulumi SDK", () => {
    it("the program's resources and Fleet do not load the SDK's index", async () => {
        expect(await loadedModules('require("./src/program/fleetResources")')).toEqual({ arborist: false, ok: true });
    }, 60_000);

    it("the operator commands load neither the SDK's index nor its Automation API (they run the pulumi CLI themselves)", async () => {
        const script = 'for (const file of ["main", "deploy", "rollback", "generations", "exec", "build", "runDeployment", "stack"]) require.resolve("./src/cli/" + file); require("./src/cli/deploy"); require("./src/cli/rollback"); require("./src/cli/generations"); require("./src/cli/exec"); require("./src/cli/build"); if (Object.keys(require.cache).some((k) => k.includes("@pulumi/pulumi/automation") || k.includes("@pulumi/pulumi/runtime/settings"))) throw new Error("the Automation API or the SDK runtime was loaded")';
        expect(await loadedModules(script)).toEqual({ arborist: false, ok: true });
    }, 60_000);

    it("(the sign works: the SDK's index does load arborist)", async () => {
        expect(await loadedModules('require("@pulumi/pulumi")')).toEqual({ arborist: true, ok: true });
    }, 60_000);
});
