// `npm run exec -- [--hosts psi,@web] [--stack S] [--parallel N] [--timeout S] -- <command…>`:
// runs one argv on each selected host over the same verified SSH master connection a deploy uses
// (pinned host keys, the host's own ssh settings), each line of output with the host's name in
// front, then a summary. The argv reaches the remote shell quoted word by word (src/ssh/quote.ts):
// `-- sh -c 'echo $HOME'` runs sh with those two arguments, nothing is joined into a shell line.
import type { HostConfig } from "../config";
import { FleetError, formatError } from "../errors";
import { mapLimit } from "../process/pool";
import { runProcess, type ProcessRunner } from "../process/runner";
import { makeRuntimeDir, removeRuntimeDir } from "../process/runtimeDir";
import type { HostOutputs } from "../provider/hostInputs";
import { SshConnection } from "../ssh/connection";
import { parseCommandArgs, positiveInteger } from "./args";
import { targetFor } from "./generations";
import { hostsOrUsageError } from "./hostsOption";
import { LinePrefixer } from "./prefixLines";
import { openFleetStack, recordedHosts, resolveStackName } from "./stack";

export const EXEC_USAGE = "npm run exec -- [--hosts psi,rho|@tag] [--stack NAME] [--parallel N] [--timeout SECONDS] -- <command> [args…]";

const EXEC_HELP = `usage: ${EXEC_USAGE}

Runs the command on each selected host (all hosts of the stack without --hosts) as the host's
login user, over the same verified SSH connection a deploy uses. Each line of its output (stdout
and stderr) is printed as it comes with "[host] " in front; a summary follows.
The words after -- are the command and its arguments, each passed on as one word (quoted for the
remote shell); to use a shell, say so: -- sh -c 'systemctl is-active web || true'.

options:
  --hosts LIST      hosts of the stack: names and @tags, comma-separated (default: all)
  --stack NAME      the stack (default: the selected stack)
  --parallel N      at most N hosts at once (default: the stack's nixos-fleet:parallel, else all)
  --timeout SECONDS stop the command on a host after this long (default: no limit): it runs
                    under the host's \`timeout\` (coreutils), SIGTERM then SIGKILL 5 s later
  -h, --help        print this help

exit status: 0 when the command exited 0 on every host; 1 when it failed on some host or some
host could not be reached (the summary names them); 2 for a usage error.
`;

const OPTIONS = {
    hosts: { type: "string" },
    stack: { type: "string" },
    parallel: { type: "string" },
    timeout: { type: "string" },
    help: { type: "boolean", short: "h" },
} as const;

export interface ExecArgs {
    hosts?: string;
    stack?: string;
    parallel?: number;
    timeoutSeconds?: number;
    help: boolean;
    /** The command and its arguments, as given after `--`. */
    command: string[];
}

/** Options before `--`, the command after it. Throws a FleetError (phase select) for anything else. */
export function parseExecArgs(args: readonly string[]): ExecArgs {
    const split = args.indexOf("--");
    const options = split < 0 ? [...args] : args.slice(0, split);
    const command = split < 0 ? [] : args.slice(split + 1);
    const values = parseCommandArgs(options, OPTIONS, EXEC_USAGE);
    if (values.help) return { help: true, command };
    if (command.length === 0) {
        throw new FleetError({
            phase: "select",
            message: split < 0 ? "no command given: put it after --" : "the command after -- is empty",
            hint: `usage: ${EXEC_USAGE} (e.g. npm run exec -- --hosts @web -- systemctl is-active web)`,
        });
    }
    if (command[0] === "") throw new FleetError({ phase: "select", message: "the command's name is empty", hint: `usage: ${EXEC_USAGE}` });
    return {
        hosts: values.hosts,
        stack: values.stack,
        parallel: positiveInteger(values.parallel, "--parallel"),
        timeoutSeconds: positiveInteger(values.timeout, "--timeout"),
        help: false,
        command,
    };
}

/** How the command ended on one host. */
export type ExecStatus = "ok" | "failed" | "unreachable";

export interface ExecHostResult {
    host: string;
    status: ExecStatus;
    /** The command's exit status; null when it did not exit by itself (signal, timeout) or never ran. */
    code: number | null;
    /** For failed and unreachable: why, in one line or a formatted FleetError. */
    reason?: string;
}

export interface ExecTarget {
    host: HostConfig;
    recorded?: HostOutputs;
}

export interface ExecOptions {
    targets: readonly ExecTarget[];
    command: readonly string[];
    parallel?: number;
    timeoutSeconds?: number;
    runner: ProcessRunner;
    runtimeDir: string;
    /** Where the prefixed output goes (process.stdout / process.stderr in the command). */
    stdout: (text: string) => void;
    stderr: (text: string) => void;
}

/** Seconds after --timeout's SIGTERM that the host's `timeout` sends SIGKILL. */
const TIMEOUT_KILL_AFTER = 5;
/** Seconds more the connection may take to close before we stop waiting for it. */
const TIMEOUT_GRACE = 10;

/**
 * --timeout: the command runs under the host's coreutils `timeout`, which stops it there (SIGTERM,
 * SIGKILL 5 s later; exit status 124 or 137). Killing the local ssh instead would leave it running:
 * without a terminal, the host's sshd does not signal a session's processes when the client goes.
 */
export function withHostTimeout(command: readonly string[], seconds: number): string[] {
    return ["timeout", `--kill-after=${TIMEOUT_KILL_AFTER}`, `${seconds}`, ...command];
}

/** Runs the command on every target; never rejects for a host's failure. Results in the targets' order. */
export async function runExec(options: ExecOptions): Promise<ExecHostResult[]> {
    return mapLimit(options.targets, options.parallel, (target) => execOnHost(target, options));
}

async function execOnHost({ host, recorded }: ExecTarget, options: ExecOptions): Promise<ExecHostResult> {
    const out = new LinePrefixer(`[${host.name}] `, options.stdout);
    const err = new LinePrefixer(`[${host.name}] `, options.stderr);
    let connection: SshConnection | undefined;
    try {
        try {
            connection = new SshConnection(targetFor(host, recorded), { runner: options.runner, runtimeDir: options.runtimeDir });
            await connection.open();
        } catch (error) {
            return { host: host.name, status: "unreachable", code: null, reason: formatError(error) };
        }
        const limit = options.timeoutSeconds;
        const result = await connection.run(limit === undefined ? options.command : withHostTimeout(options.command, limit), {
            // A backstop only: the host's own `timeout` stops the command (ending ssh here would not).
            timeoutMs: limit === undefined ? undefined : (limit + TIMEOUT_KILL_AFTER + TIMEOUT_GRACE) * 1000,
            onStdout: (chunk) => out.push(chunk),
            onStderr: (chunk) => err.push(chunk),
        });
        out.flush();
        err.flush();
        if (result.timedOut) {
            return {
                host: host.name,
                status: "failed",
                code: null,
                reason: `the command did not end within ${limit}s (--timeout) and its connection did not close ${TIMEOUT_KILL_AFTER + TIMEOUT_GRACE}s later: whether it still runs on the host is unknown (check with pgrep there)`,
            };
        }
        if (limit !== undefined && (result.code === 124 || result.code === 137)) {
            return { host: host.name, status: "failed", code: result.code, reason: `stopped on the host after ${limit}s (--timeout; exit status ${result.code})` };
        }
        if (result.code === null) return { host: host.name, status: "failed", code: null, reason: `ended by signal ${result.signal ?? "?"}` };
        if (result.code !== 0) return { host: host.name, status: "failed", code: result.code, reason: `exit status ${result.code}` };
        return { host: host.name, status: "ok", code: 0 };
    } catch (error) {
        out.flush();
        err.flush();
        // The connection went away while the command ran: whether it finished there is not known.
        const lost = error instanceof FleetError && error.phase === "connect";
        return {
            host: host.name,
            status: lost ? "unreachable" : "failed",
            code: null,
            reason: lost ? `${formatError(error)}\n  (the connection was lost while the command ran: whether it ran to the end is unknown)` : formatError(error),
        };
    } finally {
        await connection?.close().catch(() => undefined);
    }
}

/** The summary after the hosts' output: a line per host, then which hosts failed and which were unreachable. */
export function renderExecSummary(results: readonly ExecHostResult[]): string {
    const width = Math.max(4, ...results.map((r) => r.host.length));
    const lines = results.map((r) => {
        const [first = "", ...rest] = (r.reason ?? "").split("\n");
        const head = `${r.host.padEnd(width)}  ${r.status === "ok" ? "ok (exit status 0)" : `${r.status}: ${first}`}`;
        return [head, ...rest.map((line) => `${" ".repeat(width + 2)}${line}`)].join("\n");
    });
    const failed = results.filter((r) => r.status === "failed");
    const unreachable = results.filter((r) => r.status === "unreachable");
    const ok = results.length - failed.length - unreachable.length;
    const tally = `exec: ${ok} of ${results.length} host${results.length === 1 ? "" : "s"} ok`;
    const tail = [
        ...(failed.length ? [`failed on: ${failed.map((r) => `${r.host} (${r.code === null ? (r.reason ?? "").split("\n")[0] : `exit status ${r.code}`})`).join(", ")}`] : []),
        ...(unreachable.length ? [`unreachable: ${unreachable.map((r) => r.host).join(", ")}`] : []),
    ];
    return [...lines, "", tally, ...tail].join("\n");
}

export function execExitCode(results: readonly ExecHostResult[]): number {
    return results.every((r) => r.status === "ok") ? 0 : 1;
}

export async function execCommand(args: string[]): Promise<number> {
    let parsed: ExecArgs;
    try {
        parsed = parseExecArgs(args);
    } catch (error) {
        process.stderr.write(`error: ${formatError(error)}\n`);
        return 2;
    }
    if (parsed.help) {
        process.stdout.write(EXEC_HELP);
        return 0;
    }
    const projectRoot = process.cwd();
    const stackName = await resolveStackName(parsed.stack, projectRoot);
    const fleet = await openFleetStack(stackName, projectRoot);
    const hosts = hostsOrUsageError(fleet.hosts, parsed.hosts, (text) => process.stderr.write(text));
    if (hosts === undefined) return 2;
    const recorded = await recordedHosts(fleet.stack);
    const runtimeDir = makeRuntimeDir();
    let results: ExecHostResult[];
    try {
        results = await runExec({
            targets: hosts.map((host) => ({ host, recorded: recorded.get(host.name) })),
            command: parsed.command,
            parallel: parsed.parallel ?? fleet.settings.parallel,
            timeoutSeconds: parsed.timeoutSeconds,
            runner: runProcess,
            runtimeDir,
            stdout: (text) => process.stdout.write(text),
            stderr: (text) => process.stderr.write(text),
        });
    } finally {
        removeRuntimeDir(runtimeDir);
    }
    process.stdout.write(`\n${renderExecSummary(results)}\n`);
    return execExitCode(results);
}
