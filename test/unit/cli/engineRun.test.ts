// The operator commands' engine runs, started without the Automation API: its arguments, its
// environment, the event log read as it grows, failures and Ctrl-C. A stand-in `pulumi` (a shell
// script on PATH) writes events to the --event-log file as the real one does.
import { spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { EngineRunError, EventLogReader, engineArgv, engineEnv, runEngine, type EngineEvent } from "../../../src/cli/engineRun";
import { tempDir } from "../helpers/fixtures";

const PATH = process.env.PATH;
afterEach(() => {
    process.env.PATH = PATH;
});

/** A stand-in pulumi on PATH running `body` (sh), with the event log's path in $LOG and its argv saved to $DIR/argv. */
function fakePulumi(body: string): string {
    const dir = tempDir("nf-engine-");
    writeFileSync(
        join(dir, "pulumi"),
        `#!/bin/sh\nDIR='${dir}'\nprintf '%s\\n' "$@" > "$DIR/argv"\nenv > "$DIR/env"\nLOG=''\nprev=''\nfor a; do [ "$prev" = --event-log ] && LOG=$a; prev=$a; done\n${body}\n`,
        { mode: 0o755 },
    );
    process.env.PATH = `${dir}:${PATH ?? ""}`;
    return dir;
}

const event = (sequence: number, extra: Record<string, unknown> = {}) => JSON.stringify({ sequence, timestamp: 0, ...extra });
const eventDirs = () => readdirSync(tmpdir()).filter((name) => name.startsWith("nixos-fleet-events-"));

describe("engineArgv and engineEnv", () => {
    it("are what the Automation API's Stack.up/preview would run: same flags, the stack, never interactive", () => {
        expect(engineArgv("up", "prod", { target: ["urn:a", "urn:b"], parallel: 2, message: "deploy psi" }, "/tmp/e/events.jsonl")).toEqual([
            "pulumi", "up", "--yes", "--skip-preview", "--message", "deploy psi", "--target", "urn:a", "--target", "urn:b", "--parallel", "2",
            "--exec-kind", "auto.local", "--event-log", "/tmp/e/events.jsonl", "--stack", "prod", "--non-interactive",
        ]);
        expect(engineArgv("preview", "dev", {}, "/e")).toEqual(["pulumi", "preview", "--exec-kind", "auto.local", "--event-log", "/e", "--stack", "dev", "--non-interactive"]);
        const env = engineEnv({ PULUMI_CONFIG_PASSPHRASE_FILE: "/p", PULUMI_AUTOMATION_API: "false" }, { PATH: "/bin", HOME: "/root" });
        expect(env).toEqual({ PATH: "/bin", HOME: "/root", PULUMI_DEBUG_COMMANDS: "true", PULUMI_CONFIG_PASSPHRASE_FILE: "/p", PULUMI_AUTOMATION_API: "true" });
    });
});

describe("EventLogReader", () => {
    it("passes each whole line once, as it is appended; a line cut in the middle of a UTF-8 character waits for its end", () => {
        const file = join(tempDir("nf-events-"), "events.jsonl");
        writeFileSync(file, "");
        const seen: EngineEvent[] = [];
        const warnings: string[] = [];
        const reader = new EventLogReader(file, (e) => seen.push(e), (w) => warnings.push(w));
        try {
            appendFileSync(file, `${event(0)}\n${event(1).slice(0, 5)}`);
            reader.drain();
            expect(seen.map((e) => e.sequence)).toEqual([0]);
            appendFileSync(file, `${event(1).slice(5)}\n`);
            const line = Buffer.from(`${event(2, { diagnosticEvent: { message: "gépé ✓" } })}\n`);
            appendFileSync(file, line.subarray(0, line.indexOf("✓") + 1));
            reader.drain();
            expect(seen.map((e) => e.sequence)).toEqual([0, 1]);
            appendFileSync(file, line.subarray(line.indexOf("✓") + 1));
            reader.drain();
            expect(seen.map((e) => e.sequence)).toEqual([0, 1, 2]);
            expect((seen[2] as { diagnosticEvent?: { message?: string } }).diagnosticEvent?.message).toBe("gépé ✓");
            appendFileSync(file, `not json\n${event(3)}`);
        } finally {
            reader.close();
        }
        // close() reads to the end: the last line counts without its newline; the bad one is a warning that shows none of it.
        expect(seen.map((e) => e.sequence)).toEqual([0, 1, 2, 3]);
        expect(warnings).toEqual(["an engine event could not be read (8 characters, not shown)"]);
    });

    it("a line of tens of MB (a diagnostic with a host's whole output) is joined once, not on every 64 KiB read", () => {
        const file = join(tempDir("nf-events-"), "events.jsonl");
        const message = "x".repeat(40_000_000);
        writeFileSync(file, `${event(0, { diagnosticEvent: { message } })}\n${event(1)}\n${event(2).slice(0, 4)}`);
        const seen: EngineEvent[] = [];
        const reader = new EventLogReader(file, (e) => seen.push(e), () => undefined);
        const started = Date.now();
        reader.drain();
        // Joined on each read, this took ~14 s (quadratic in the line's length); once, well under a second.
        expect(Date.now() - started).toBeLessThan(4000);
        expect(seen.map((e) => e.sequence)).toEqual([0, 1]);
        expect((seen[0] as { diagnosticEvent?: { message?: string } }).diagnosticEvent?.message).toHaveLength(message.length);
        appendFileSync(file, `${event(2).slice(4)}\n`);
        reader.close();
        expect(seen.map((e) => e.sequence)).toEqual([0, 1, 2]);
    });

    it("a handler that throws is a warning; the events after it still come", () => {
        const file = join(tempDir("nf-events-"), "events.jsonl");
        writeFileSync(file, `${event(0)}\n${event(1)}\n`);
        const seen: number[] = [];
        const warnings: string[] = [];
        const reader = new EventLogReader(
            file,
            (e) => {
                if (e.sequence === 0) throw new Error("boom");
                seen.push(e.sequence);
            },
            (w) => warnings.push(w),
        );
        reader.close();
        expect(seen).toEqual([1]);
        expect(warnings).toEqual(["an engine event could not be handled: boom"]);
    });
});

describe("runEngine", { timeout: 20_000 }, () => {
    it("runs pulumi in the project with the stack's variables, passes every event, and leaves no event file behind", async () => {
        const dir = fakePulumi(`printf '%s\\n' '${event(0)}' >> "$LOG"; sleep 0.3; printf '%s\\n' '${event(1, { summaryEvent: {} })}' >> "$LOG"; echo done; exit 0`);
        const before = eventDirs().length;
        const seen: number[] = [];
        const project = tempDir("nf-project-");
        const result = await runEngine("up", { name: "prod", projectRoot: project, envVars: { PULUMI_CONFIG_PASSPHRASE: "x" } }, { target: ["urn:a"], onEvent: (e) => seen.push(e.sequence) });
        expect(result).toMatchObject({ code: 0, stdout: "done\n" });
        expect(seen).toEqual([0, 1]);
        const env = (await import("node:fs")).readFileSync(join(dir, "env"), "utf8");
        expect(env).toMatch(/^PULUMI_CONFIG_PASSPHRASE=x$/m);
        expect(env).toMatch(/^PULUMI_AUTOMATION_API=true$/m);
        expect(env).toMatch(new RegExp(`^PWD=${project}$`, "m"));
        expect(eventDirs().length).toBe(before);
    });

    it("a failed run rejects with pulumi's stderr (runDeployment classifies it); the events until then were passed", async () => {
        fakePulumi(`printf '%s\\n' '${event(0)}' >> "$LOG"; echo 'error: the stack is currently locked by 1 lock(s)' >&2; exit 255`);
        const seen: number[] = [];
        const error = await runEngine("up", { name: "prod", projectRoot: tempDir("nf-project-"), envVars: {} }, { onEvent: (e) => seen.push(e.sequence) }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(EngineRunError);
        expect((error as EngineRunError).result).toMatchObject({ code: 255, stderr: "error: the stack is currently locked by 1 lock(s)\n" });
        expect((error as Error).message).toBe("pulumi up exited with 255: the stack is currently locked by 1 lock(s)");
        expect(seen).toEqual([0]);
    });

    it("no pulumi at all: rejects saying it could not run", async () => {
        process.env.PATH = tempDir("nf-empty-path-");
        const error = await runEngine("preview", { name: "prod", projectRoot: tempDir("nf-project-"), envVars: {} }, {}).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(EngineRunError);
        expect((error as Error).message).toBe("pulumi preview could not run");
    });

    it("pulumi killed outright: rejects naming the signal (not 'could not run'), with the events it wrote", async () => {
        fakePulumi(`printf '%s\\n' '${event(0)}' >> "$LOG"\nkill -KILL $$`);
        const seen: number[] = [];
        const error = await runEngine("up", { name: "prod", projectRoot: tempDir("nf-project-"), envVars: {} }, { onEvent: (e) => seen.push(e.sequence) }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(EngineRunError);
        expect((error as EngineRunError).result).toMatchObject({ code: null, signal: "SIGKILL" });
        expect((error as Error).message).toBe("pulumi up was killed by SIGKILL");
        expect(seen).toEqual([0]);
    });

    it("the directory a command killed outright left (its pid is gone) is removed by the next run; a live command's stays", async () => {
        fakePulumi("exit 0");
        const dead = join(tmpdir(), "nixos-fleet-events-4194990-abcDEF"); // above Linux's pid_max
        const live = join(tmpdir(), `nixos-fleet-events-${process.pid}-ghiJKL`);
        for (const dir of [dead, live]) mkdirSync(dir);
        writeFileSync(join(dead, "events.jsonl"), "");
        try {
            await runEngine("preview", { name: "prod", projectRoot: tempDir("nf-project-"), envVars: {} }, {});
            for (let i = 0; i < 50 && existsSync(dead); i++) await new Promise((resolve) => setTimeout(resolve, 20));
            expect(existsSync(dead)).toBe(false);
            expect(existsSync(live)).toBe(true);
        } finally {
            rmSync(live, { recursive: true, force: true });
            rmSync(dead, { recursive: true, force: true });
        }
    });

    it("pulumi runs its update to its end when the command is killed outright (SIGKILL): its output is no pipe that dies with it", { timeout: 40_000 }, async () => {
        // pulumi writes to its output after the command died: to a closed pipe, that killed it
        // (SIGPIPE) mid-update, the stack left locked.
        const dir = fakePulumi(`sleep 1\nfor i in 1 2 3 4 5 6 7 8; do echo "output $i"; echo "diag $i" >&2; done\necho finished > "$DIR/finished"`);
        const script = join(dir, "command.ts");
        writeFileSync(
            script,
            `import { runEngine } from ${JSON.stringify(join(__dirname, "../../../src/cli/engineRun"))};\n` +
                `void runEngine("up", { name: "prod", projectRoot: ${JSON.stringify(dir)}, envVars: {} }, {});\nsetInterval(() => undefined, 1000);\n`,
        );
        const command = spawn(process.execPath, ["-r", "ts-node/register/transpile-only", script], { cwd: join(__dirname, "../../.."), env: { ...process.env, TS_NODE_TRANSPILE_ONLY: "true" }, stdio: "ignore" });
        // Killed once pulumi runs (it saves its argv first), however long the command took to start.
        for (let i = 0; i < 400 && !existsSync(join(dir, "argv")); i++) await new Promise((resolve) => setTimeout(resolve, 50));
        expect(existsSync(join(dir, "argv"))).toBe(true);
        command.kill("SIGKILL");
        for (let i = 0; i < 200 && !existsSync(join(dir, "finished")); i++) await new Promise((resolve) => setTimeout(resolve, 50));
        expect(existsSync(join(dir, "finished"))).toBe(true);
        for (const name of eventDirs().filter((name) => name.startsWith(`nixos-fleet-events-${command.pid}-`))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
    });

    it("the abort signal gives pulumi one SIGINT (its graceful cancel); the run ends as pulumi ends it", async () => {
        const dir = fakePulumi(`trap 'echo cancelled > "$DIR/sigint"; exit 1' INT\nprintf '%s\\n' '${event(0)}' >> "$LOG"\nwhile :; do sleep 0.1; done`);
        const abort = new AbortController();
        const seen: number[] = [];
        const run = runEngine("up", { name: "prod", projectRoot: tempDir("nf-project-"), envVars: {} }, { signal: abort.signal, onEvent: (e) => seen.push(e.sequence) });
        await new Promise((resolve) => setTimeout(resolve, 500));
        abort.abort();
        const error = await run.catch((e: unknown) => e);
        expect((error as EngineRunError).result.code).toBe(1);
        expect(existsSync(join(dir, "sigint"))).toBe(true);
        expect(seen).toEqual([0]);
    });
});
