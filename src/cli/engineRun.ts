// The engine runs of the operator commands (`pulumi up`, `pulumi preview`), started as the
// Automation API starts them (the same arguments and environment) but without loading it: the
// Automation API, the SDK's runtime settings and gRPC cost a command ~0.2 s of CPU before the
// engine could start, on a machine where that CPU is shared with pulumi's own start. The engine's
// events come through `--event-log` into a file of a private directory, read as it grows (the
// Automation API's own way before it took a gRPC stream), and a last time once pulumi has exited.
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { sweepStaleRuntimeDirsInBackground } from "../process/runtimeDir";

export type { EngineEvent };

export interface EngineRunOptions {
    /** URNs the run is limited to (--target). */
    target?: readonly string[];
    /** Resource operations at once (--parallel). */
    parallel?: number;
    /** The update's message in the stack's history (--message). */
    message?: string;
    /** Each engine event as it comes. */
    onEvent?: (event: EngineEvent) => void;
    /** Aborted: the engine gets one SIGINT, its graceful cancel. */
    signal?: AbortSignal;
}

export interface EngineRunResult {
    code: number | null;
    /** The signal that ended pulumi (a `kill -9`, the OOM killer): it could not release the stack's lock. */
    signal?: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
}

/** The engine run ended with an error (or could not start): pulumi's own output says why (runDeployment's classifyFailure). */
export class EngineRunError extends Error {
    constructor(
        readonly command: string,
        readonly result: EngineRunResult,
    ) {
        const said = result.stderr.split("\n").filter((line) => /^error: /.test(line.trim()));
        const ended = result.signal ? `was killed by ${result.signal}` : result.code === null ? "could not run" : `exited with ${result.code}`;
        super(`pulumi ${command} ${ended}${said.length ? `: ${said[said.length - 1]!.trim().slice(7)}` : ""}`);
        this.name = "EngineRunError";
    }
}

/** Where and how a stack's engine runs: the project root, the stack, and the variables its runs add (the dev passphrase). */
export interface EngineStackRef {
    name: string;
    projectRoot: string;
    envVars: Record<string, string>;
}

/** `pulumi up|preview …` as the Automation API's Stack.up/preview builds it for these options. */
export function engineArgv(command: "up" | "preview", stack: string, options: EngineRunOptions, eventLog: string): string[] {
    const argv = ["pulumi", command];
    if (command === "up") argv.push("--yes", "--skip-preview");
    if (options.message !== undefined) argv.push("--message", options.message);
    for (const urn of options.target ?? []) argv.push("--target", urn);
    if (options.parallel !== undefined) argv.push("--parallel", String(options.parallel));
    argv.push("--exec-kind", "auto.local", "--event-log", eventLog, "--stack", stack, "--non-interactive");
    return argv;
}

/** What a pulumi run of the operator commands adds to this process's environment (as the Automation API's runs). */
export function engineEnv(envVars: Record<string, string>, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
    return { ...base, ...pulumiRunVars(envVars) };
}

/** The variables every pulumi run of the commands adds (engine runs, state and history reads): the stack's, and the Automation API's markers. */
export function pulumiRunVars(envVars: Record<string, string>): Record<string, string> {
    return { PULUMI_DEBUG_COMMANDS: "true", ...envVars, PULUMI_AUTOMATION_API: "true" };
}

/**
 * Reads the engine's event log as pulumi appends to it: one JSON event per line. Read on each
 * change the file system reports, every 100 ms in case one is missed, and to its end by close().
 */
export class EventLogReader {
    private readonly fd: number;
    private position = 0;
    /** The reads since the last whole line (the start of the next one). */
    private pending: Buffer[] = [];
    private readonly watcher?: FSWatcher;
    private readonly timer: NodeJS.Timeout;
    private readonly buffer = Buffer.alloc(64 * 1024);
    private closed = false;

    constructor(
        file: string,
        private readonly onEvent: (event: EngineEvent) => void,
        private readonly warn: (message: string) => void,
    ) {
        this.fd = openSync(file, "r");
        try {
            this.watcher = watch(file, () => this.drain());
            this.watcher.on("error", () => undefined);
        } catch {
            this.watcher = undefined;
        }
        this.timer = setInterval(() => this.drain(), 100);
        this.timer.unref();
    }

    /** Reads what was appended since the last read and passes on every whole line. */
    drain(): void {
        if (this.closed) return;
        for (;;) {
            const read = readSync(this.fd, this.buffer, 0, this.buffer.length, this.position);
            if (read <= 0) break;
            this.position += read;
            // Bytes, not text, until a line is whole: a read may end inside a UTF-8 sequence. The
            // reads of a long line are joined once it ends, not on each read (a line of tens of MB
            // held the process for seconds, joined again and again).
            const chunk = this.buffer.subarray(0, read);
            const end = chunk.lastIndexOf(0x0a);
            if (end < 0) {
                this.pending.push(Buffer.from(chunk));
                continue;
            }
            const lines = Buffer.concat([...this.pending, chunk.subarray(0, end)]).toString("utf8").split("\n");
            this.pending = end + 1 < read ? [Buffer.from(chunk.subarray(end + 1))] : [];
            for (const line of lines) this.pass(line);
        }
    }

    private pass(line: string): void {
        if (!line.trim()) return;
        let event: EngineEvent;
        try {
            event = JSON.parse(line) as EngineEvent;
        } catch {
            this.warn(`an engine event could not be read (${line.length} characters, not shown)`);
            return;
        }
        try {
            this.onEvent(event);
        } catch (error) {
            this.warn(`an engine event could not be handled: ${error instanceof Error ? error.message : String(error)}`);
        }
    }

    /** Reads to the end (pulumi has exited), then stops. */
    close(): void {
        if (this.closed) return;
        this.drain();
        if (this.pending.length) this.pass(Buffer.concat(this.pending).toString("utf8"));
        this.pending = [];
        this.closed = true;
        clearInterval(this.timer);
        this.watcher?.close();
        closeSync(this.fd);
    }
}

/** The private directory of one engine run, named with this process's pid: left by a command killed outright (SIGKILL), the next run removes it. */
const EVENT_DIR = /^nixos-fleet-events-(\d+)-[A-Za-z0-9]{6}$/;

/**
 * Runs `pulumi up` or `pulumi preview` of the stack. Resolves when pulumi exited 0; rejects with
 * EngineRunError otherwise. stdin is not a terminal (never read); Ctrl-C reaches pulumi from the
 * terminal itself (same process group), `signal` sends it one SIGINT.
 */
export async function runEngine(
    command: "up" | "preview",
    stack: EngineStackRef,
    options: EngineRunOptions,
    warn: (message: string) => void = (message) => process.stderr.write(`warning: ${message}\n`),
): Promise<EngineRunResult> {
    void sweepStaleRuntimeDirsInBackground(tmpdir(), EVENT_DIR);
    const dir = mkdtempSync(join(tmpdir(), `nixos-fleet-events-${process.pid}-`));
    const eventLog = join(dir, "events.jsonl");
    writeFileSync(eventLog, "", { mode: 0o600 });
    // pulumi's output goes to files, not pipes: when this process is killed outright, pulumi
    // writing to a closed pipe died of it mid-update, leaving the stack locked; with files it
    // runs its update to the end (and releases the lock). They are read once it has exited.
    const outputFile = join(dir, "stdout");
    const errorFile = join(dir, "stderr");
    const reader = new EventLogReader(eventLog, options.onEvent ?? (() => undefined), warn);
    const [file, ...args] = engineArgv(command, stack.name, options, eventLog);
    try {
        const output = openSync(outputFile, "w", 0o600);
        const errors = openSync(errorFile, "w", 0o600);
        const result = await new Promise<EngineRunResult>((resolve) => {
            let settled = false;
            let spawnError = "";
            const child = spawn(file!, args, { cwd: stack.projectRoot, env: engineEnv(stack.envVars), stdio: ["ignore", output, errors] });
            closeSync(output);
            closeSync(errors);
            const abort = () => child.kill("SIGINT");
            if (options.signal?.aborted) abort();
            options.signal?.addEventListener("abort", abort, { once: true });
            const finish = (code: number | null, signal: NodeJS.Signals | null = null) => {
                if (settled) return;
                settled = true;
                options.signal?.removeEventListener("abort", abort);
                resolve({ code, signal, stdout: readFileSync(outputFile, "utf8"), stderr: readFileSync(errorFile, "utf8") + spawnError });
            };
            child.on("error", (error) => {
                spawnError += `${error.message}\n`;
                finish(null);
            });
            child.on("close", (code, signal) => finish(code, signal));
        });
        reader.close();
        if (result.code !== 0) throw new EngineRunError(command, result);
        return result;
    } finally {
        reader.close();
        rmSync(dir, { recursive: true, force: true });
    }
}
