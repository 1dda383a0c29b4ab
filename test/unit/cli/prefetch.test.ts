// main.ts starts a stack command's first pulumi runs before the command loads; stack.ts takes
// their results only when they answer its own question.
import { readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { configArgv, parseSelectedStack, resetPrefetch, stackArgument, startPrefetch, takeConfig, takeSelectedStack } from "../../../src/cli/prefetch";
import type { ProcessRunner, RunOptions } from "../../../src/process/runner";
import { tempDir } from "../helpers/fixtures";

const ROOT = resolve(__dirname, "../../..");

afterEach(() => resetPrefetch());

function recordingRunner(outputs: Record<string, { code: number; stdout: string }> = {}) {
    const calls: { argv: readonly string[]; options?: RunOptions }[] = [];
    const run: ProcessRunner = async (argv, options) => {
        calls.push({ argv, options });
        const out = outputs[argv.slice(0, 3).join(" ")] ?? { code: 0, stdout: "" };
        return { argv, code: out.code, signal: null, stdout: out.stdout, stderr: "", timedOut: false, durationMs: 1 };
    };
    return { run, calls };
}

describe("stackArgument", () => {
    it("reads --stack NAME and --stack=NAME; nothing without it; stops at -- (exec's remote command)", () => {
        expect(stackArgument(["--hosts", "psi", "--stack", "prod", "--yes"])).toBe("prod");
        expect(stackArgument(["--stack=prod"])).toBe("prod");
        expect(stackArgument(["--hosts", "psi"])).toBeUndefined();
        expect(stackArgument(["--hosts", "psi", "--", "echo", "--stack", "prod"])).toBeUndefined();
    });

    it("leaves unusual arguments to the command's own parser (null)", () => {
        expect(stackArgument(["--stack"])).toBeNull();
        expect(stackArgument(["--stack", "--yes"])).toBeNull();
        expect(stackArgument(["--stack="])).toBeNull();
        expect(stackArgument(["--stack", "a", "--stack", "b"])).toBeNull();
        expect(stackArgument(["--stack", "prod", "--help"])).toBeNull();
        expect(stackArgument(["-h"])).toBeNull();
    });
});

describe("startPrefetch", () => {
    it("with --stack: that stack's config (the dev passphrase file for dev), taken once, and only for that stack and project", async () => {
        const root = tempDir("nf-prefetch-");
        const runner = recordingRunner({ "pulumi config --show-secrets": { code: 0, stdout: "{}" } });
        startPrefetch(["--stack", "dev"], root, {}, runner.run);
        expect(runner.calls.map((call) => call.argv.join(" ")).sort()).toEqual(["pulumi config --show-secrets --json --stack dev --non-interactive"]);
        const config = runner.calls.find((call) => call.argv[1] === "config")!;
        expect(config.argv).toEqual(configArgv("dev"));
        expect(config.options?.cwd).toBe(root);
        expect(config.options?.env?.PULUMI_CONFIG_PASSPHRASE_FILE).toMatch(/dev/);
        expect(takeConfig("prod", root)).toBeUndefined();
        expect(takeConfig("dev", "/elsewhere")).toBeUndefined();
        expect((await takeConfig("dev", root))?.stdout).toBe("{}");
        expect(takeConfig("dev", root)).toBeUndefined();
        expect(await takeSelectedStack()).toBeUndefined();
    });

    it("without --stack: the selected stack, named as --stack takes it (stack ls's current entry); a failed or odd answer is no answer", async () => {
        const root = tempDir("nf-prefetch-");
        // Pulumi Cloud names a stack of another organization than the default one "org/stack";
        // `pulumi stack --show-name` prints only "stack", which --stack reads as the default
        // organization's stack of that name: another stack.
        const listing = JSON.stringify([{ name: "dev", current: false }, { name: "acme/prod", current: true }]);
        const runner = recordingRunner({ "pulumi stack ls": { code: 0, stdout: listing } });
        startPrefetch(["--hosts", "psi"], root, {}, runner.run);
        expect(runner.calls.map((call) => call.argv.join(" ")).sort()).toEqual(["pulumi stack ls --json --non-interactive"]);
        expect(await takeSelectedStack()).toBe("acme/prod");
        expect(await takeSelectedStack()).toBeUndefined();
        for (const answer of [
            { code: 255, stdout: "" },
            { code: 0, stdout: "prod\n" },
            { code: 0, stdout: JSON.stringify([{ name: "dev", current: false }]) },
            { code: 0, stdout: JSON.stringify([{ name: "two words", current: true }]) },
        ]) {
            resetPrefetch();
            startPrefetch([], root, {}, recordingRunner({ "pulumi stack ls": answer }).run);
            expect(await takeSelectedStack()).toBeUndefined();
            expect(parseSelectedStack({ argv: [], signal: null, stderr: "", timedOut: false, durationMs: 1, ...answer })).toBeUndefined();
        }
    });

    it("no config read for a stack whose file alone says what pulumi would (plainStackConfig): the command reads the file", () => {
        const root = tempDir("nf-prefetch-");
        writeFileSync(join(root, "Pulumi.yaml"), "name: nixos-fleet\n");
        writeFileSync(join(root, "Pulumi.dev.yaml"), "config:\n  nixos-fleet:hosts: [psi]\n");
        const runner = recordingRunner();
        startPrefetch(["--stack", "dev"], root, {}, runner.run);
        expect(runner.calls).toEqual([]);
        expect(takeConfig("dev", root)).toBeUndefined();
        // A secret in it: pulumi decrypts it.
        writeFileSync(join(root, "Pulumi.dev.yaml"), "config:\n  nixos-fleet:hosts: [psi]\n  nixos-fleet:secrets: { psi: { k: { content: { secure: v1:x } } } }\n");
        resetPrefetch();
        startPrefetch(["--stack", "dev"], root, {}, runner.run);
        expect(runner.calls.map((call) => call.argv)).toEqual([configArgv("dev")]);
    });

    it("starts nothing for --help, and no config read for a stack whose passphrase is missing (the command says so itself)", () => {
        const runner = recordingRunner();
        expect(startPrefetch(["--help"], "/nonexistent", {}, runner.run)).toBeUndefined();
        expect(runner.calls).toEqual([]);
        const root = tempDir("nf-prefetch-");
        writeFileSync(`${root}/Pulumi.prod.yaml`, "encryptionsalt: v1:abc\n");
        startPrefetch(["--stack", "prod"], root, {}, runner.run);
        expect(runner.calls).toEqual([]);
        expect(takeConfig("prod", root)).toBeUndefined();
    });
});

describe("a command that ends before it takes what was started", () => {
    it("leaves no pulumi run behind (a usage error exits at once)", () => {
        // A pulumi that takes its time: it writes its pid, then sleeps.
        const dir = tempDir("nf-prefetch-orphans-");
        const pids = join(dir, "pids");
        writeFileSync(join(dir, "pulumi"), `#!/bin/sh\necho $$ >> "${pids}"\nexec sleep 30\n`, { mode: 0o755 });
        const result = spawnSync("node", ["-r", join(ROOT, "node_modules", "ts-node", "register", "transpile-only"), join(ROOT, "src", "cli", "main.ts"), "deploy", "--bogus", "--stack", "dev"], {
            cwd: dir,
            env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ""}`, TS_NODE_PROJECT: join(ROOT, "tsconfig.json"), PULUMI_CONFIG_PASSPHRASE: "test-only" },
            encoding: "utf8",
            timeout: 60_000,
        });
        expect(result.stderr).toMatch(/Unknown option '--bogus'/);
        expect(result.status).toBe(1);
        const started = readFileSync(pids, "utf8").split("\n").filter(Boolean).map(Number);
        // pulumi version and the stack's config were started (the prefetch).
        expect(started.length).toBeGreaterThanOrEqual(1);
        // Running, not a zombie left for init to reap (it was killed).
        const alive = started.filter((pid) => {
            try {
                return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
            } catch {
                return false;
            }
        });
        for (const pid of alive) process.kill(pid, "SIGKILL");
        expect(alive).toEqual([]);
    }, 60_000);
});
