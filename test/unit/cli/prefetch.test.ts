// main.ts starts a stack command's first pulumi runs before the command loads; stack.ts takes
// their results only when they answer its own question.
import { readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PulumiCommand } from "@pulumi/pulumi/automation";
import * as semver from "semver";
import { configArgv, resetPrefetch, stackArgument, startPrefetch, takeConfig, takeSelectedStack, takeVersion } from "../../../src/cli/prefetch";
import { pulumiCommandOf } from "../../../src/cli/pulumiCommand";
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
    it("with --stack: pulumi version and that stack's config (the dev passphrase file for dev), each taken once, and only for that stack and project", async () => {
        const root = tempDir("nf-prefetch-");
        const runner = recordingRunner({ "pulumi config --show-secrets": { code: 0, stdout: "{}" } });
        startPrefetch(["--stack", "dev"], root, {}, runner.run);
        expect(runner.calls.map((call) => call.argv.join(" ")).sort()).toEqual(["pulumi config --show-secrets --json --stack dev --non-interactive", "pulumi version"]);
        const config = runner.calls.find((call) => call.argv[1] === "config")!;
        expect(config.argv).toEqual(configArgv("dev"));
        expect(config.options?.cwd).toBe(root);
        expect(config.options?.env?.PULUMI_CONFIG_PASSPHRASE_FILE).toMatch(/dev/);
        expect(takeConfig("prod", root)).toBeUndefined();
        expect(takeConfig("dev", "/elsewhere")).toBeUndefined();
        expect((await takeConfig("dev", root))?.stdout).toBe("{}");
        expect(takeConfig("dev", root)).toBeUndefined();
        expect(takeVersion()).toBeDefined();
        expect(takeVersion()).toBeUndefined();
        expect(await takeSelectedStack()).toBeUndefined();
    });

    it("without --stack: the selected stack as the Automation API's workspace.stack() names it (stack ls's current entry); a failed or odd answer is no answer", async () => {
        const root = tempDir("nf-prefetch-");
        // Pulumi Cloud names a stack of another organization than the default one "org/stack";
        // `pulumi stack --show-name` prints only "stack", which --stack reads as the default
        // organization's stack of that name: another stack.
        const listing = JSON.stringify([{ name: "dev", current: false }, { name: "acme/prod", current: true }]);
        const runner = recordingRunner({ "pulumi stack ls": { code: 0, stdout: listing } });
        startPrefetch(["--hosts", "psi"], root, {}, runner.run);
        expect(runner.calls.map((call) => call.argv.join(" ")).sort()).toEqual(["pulumi stack ls --json --non-interactive", "pulumi version"]);
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
        }
    });

    it("starts nothing for --help, and no config read for a stack whose passphrase is missing (the command says so itself)", () => {
        const runner = recordingRunner();
        expect(startPrefetch(["--help"], "/nonexistent", {}, runner.run)).toBeUndefined();
        expect(runner.calls).toEqual([]);
        const root = tempDir("nf-prefetch-");
        writeFileSync(`${root}/Pulumi.prod.yaml`, "encryptionsalt: v1:abc\n");
        startPrefetch(["--stack", "prod"], root, {}, runner.run);
        expect(runner.calls.map((call) => call.argv[1])).toEqual(["version"]);
        expect(takeConfig("prod", root)).toBeUndefined();
    });
});

describe("pulumiCommandOf", () => {
    it("is what PulumiCommand.get makes of `pulumi version`'s output, with the SDK's own semver", () => {
        const command = pulumiCommandOf("v3.248.0\n")!;
        expect(command).toBeInstanceOf(PulumiCommand);
        expect(command.command).toBe("pulumi");
        expect(command.version?.format()).toBe("3.248.0");
        expect(typeof (command as unknown as { run: unknown }).run).toBe("function");
        // The workspace compares versions with the SDK's semver: it must accept this one.
        expect(command.version!.compare("3.95.0")).toBe(1);
        expect(semver.gte(command.version!.format(), "3.0.0")).toBe(true);
    });

    it("refuses what PulumiCommand.get would refuse (then it runs and says why)", () => {
        expect(pulumiCommandOf("")).toBeUndefined();
        expect(pulumiCommandOf("warning: something\nv3.1.0")).toBeUndefined();
        expect(pulumiCommandOf("v4.0.0")).toBeUndefined();
        // Older than the SDK's minimum CLI version (3.2.0-alpha).
        expect(pulumiCommandOf("v3.1.0")).toBeUndefined();
        expect(pulumiCommandOf("v3.2.0")).toBeDefined();
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
