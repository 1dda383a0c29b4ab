// The empty-program baseline: a Pulumi project with no resources, run by the same toolchain
// (.tools/bin/pulumi, our Node.js language host, the SDK from node_modules, a file:// backend).
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runProcess, type RunResult } from "../src/process/runner";
import { benchTempDir, removeBenchTempDir } from "./tempDirs";

export class EmptyProgram {
    private constructor(readonly dir: string, readonly env: Record<string, string>) {}

    static async create(root: string, env: Record<string, string>): Promise<EmptyProgram> {
        const dir = benchTempDir("nf-bench-empty-");
        mkdirSync(join(dir, "state"));
        mkdirSync(join(dir, "project"));
        writeFileSync(join(dir, "project", "Pulumi.yaml"), "name: bench-empty\nmain: index.js\nruntime:\n  name: nodejs\n  options:\n    typescript: false\n");
        writeFileSync(join(dir, "project", "package.json"), JSON.stringify({ name: "bench-empty", main: "index.js" }));
        writeFileSync(join(dir, "project", "index.js"), '"use strict";\n// No resources: the cost of Pulumi itself.\n');
        symlinkSync(join(root, "node_modules"), join(dir, "project", "node_modules"));
        const program = new EmptyProgram(dir, { ...env, PULUMI_BACKEND_URL: `file://${join(dir, "state")}` });
        try {
            await program.pulumiChecked(["stack", "init", "bench"]);
        } catch (error) {
            // The caller gets no EmptyProgram to dispose of: its directory goes here.
            program.dispose();
            throw error;
        }
        return program;
    }

    private async pulumi(args: string[]): Promise<RunResult> {
        return runProcess(["pulumi", ...args], { cwd: join(this.dir, "project"), env: { ...this.env, PULUMI_CONFIG_PASSPHRASE_FILE: undefined }, timeoutMs: 120_000 });
    }

    private async pulumiChecked(args: string[]): Promise<void> {
        const result = await this.pulumi(args);
        if (result.code !== 0) throw new Error(`empty program: pulumi ${args.join(" ")} failed:\n${result.stdout}\n${result.stderr}`);
    }

    preview(): Promise<void> {
        return this.pulumiChecked(["preview", "--non-interactive", "-s", "bench"]);
    }

    /**
     * `pulumi up` as the P2 names it: with its preview (`--yes` as it runs without a
     * terminal). With skipPreview, the engine run `npm run deploy -- --yes` makes (the Automation
     * API's `up` skips the preview): the bench reports both.
     */
    up(options: { skipPreview?: boolean } = {}): Promise<void> {
        return this.pulumiChecked(["up", "--yes", ...(options.skipPreview ? ["--skip-preview"] : []), "--non-interactive", "-s", "bench"]);
    }

    dispose(): void {
        removeBenchTempDir(this.dir);
    }
}
