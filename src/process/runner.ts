// The one edge where nixos-fleet starts processes. Every phase takes a ProcessRunner so it can be
// unit-tested with a fake; the real one spawns argument arrays directly (never a shell).
import { spawn } from "node:child_process";

export interface RunOptions {
    cwd?: string;
    /** Variables added to (or, when undefined, removed from) the inherited environment. */
    env?: Record<string, string | undefined>;
    /** Written to the child's stdin, which is then closed. */
    input?: string;
    /** Kill the process (SIGKILL) after this long; the result then has timedOut = true. */
    timeoutMs?: number;
    /** Kill the process (SIGKILL) when aborted (e.g. a handshake nobody waits for any more); the result then has signal SIGKILL. */
    signal?: AbortSignal;
    /** The signal an abort sends instead of SIGKILL: SIGTERM lets Nix stop its builders and release its locks. */
    abortSignal?: NodeJS.Signals;
    onStdout?: (chunk: string) => void;
    onStderr?: (chunk: string) => void;
    /**
     * How stdout is decoded (default utf8). "latin1" gives one character per byte, for a caller
     * that must count the bytes it has read (the activation's follow resumes at a byte offset) and
     * decodes them itself.
     */
    stdoutEncoding?: "utf8" | "latin1";
}

export interface RunResult {
    argv: readonly string[];
    /** Exit code, or null when the process was ended by a signal. */
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    timedOut: boolean;
    durationMs: number;
}

export type ProcessRunner = (argv: readonly string[], options?: RunOptions) => Promise<RunResult>;

function mergeEnv(extra: RunOptions["env"]): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [key, value] of Object.entries(extra ?? {})) {
        if (value === undefined) delete env[key];
        else env[key] = value;
    }
    return env;
}

/** Spawns argv[0] with argv[1..] (no shell) and collects its output. Never rejects on a non-zero exit. */
export const runProcess: ProcessRunner = (argv, options = {}) =>
    new Promise((resolve, reject) => {
        const [command, ...args] = argv;
        if (command === undefined) {
            reject(new Error("runProcess: empty argument list"));
            return;
        }
        const started = Date.now();
        const child = spawn(command, args, {
            cwd: options.cwd,
            env: mergeEnv(options.env),
            stdio: ["pipe", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        let timedOut = false;
        let aborted = false;
        const abort = (): void => {
            aborted = true;
            child.kill(options.abortSignal ?? "SIGKILL");
        };
        if (options.signal?.aborted) abort();
        else options.signal?.addEventListener("abort", abort, { once: true });
        const timer =
            options.timeoutMs === undefined
                ? undefined
                : setTimeout(() => {
                      timedOut = true;
                      child.kill("SIGKILL");
                  }, options.timeoutMs);
        child.stdout.setEncoding(options.stdoutEncoding ?? "utf8").on("data", (chunk: string) => {
            stdout += chunk;
            options.onStdout?.(chunk);
        });
        child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
            stderr += chunk;
            options.onStderr?.(chunk);
        });
        child.on("error", (error) => {
            if (timer) clearTimeout(timer);
            options.signal?.removeEventListener("abort", abort);
            reject(new Error(`could not start ${command}: ${error.message}`));
        });
        child.on("exit", () => {
            // A killed ssh client can leave its output pipes held by a master connection:
            // after a timeout (or an abort), stop waiting for them.
            if (timedOut || aborted) {
                child.stdout.destroy();
                child.stderr.destroy();
            }
        });
        child.on("close", (code, signal) => {
            if (timer) clearTimeout(timer);
            options.signal?.removeEventListener("abort", abort);
            resolve({ argv, code, signal, stdout, stderr, timedOut, durationMs: Date.now() - started });
        });
        child.stdin.on("error", () => undefined); // a child that exits early closes its stdin
        child.stdin.end(options.input ?? "");
    });

/** Runs a command and throws (with its stderr) unless it exits 0. For setup code, not deploy phases. */
export async function runChecked(runner: ProcessRunner, argv: readonly string[], options?: RunOptions): Promise<RunResult> {
    const result = await runner(argv, options);
    if (result.code !== 0) {
        const why = result.timedOut ? "timed out" : `exited with ${result.code ?? result.signal}`;
        throw new Error(`${argv.join(" ")} ${why}: ${result.stderr.trim() || result.stdout.trim()}`);
    }
    return result;
}
