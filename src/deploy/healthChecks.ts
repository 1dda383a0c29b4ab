// Verify phase: the health checks of a host file, run after activation. Commands and systemd units
// run on the host as root over the deploy's one SSH master (argv arrays, never a shell string);
// TCP and HTTP checks run from the deployer, the way clients reach the service. Every check runs,
// even after another failed, so the report names every failing check; checks run concurrently,
// the attempts of one check one after another with a delay (services often need a moment after a
// switch). Nothing here throws for an unhealthy host: the caller turns the report into a
// FleetError (phase "verify") and decides whether to revert the host (keepGoing).
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import { HEALTH_CHECK_DEFAULTS, type CommandCheck, type HealthChecks, type HttpCheck, type TcpCheck } from "../config/healthChecks";
import { formatError, tail } from "../errors";
import type { ProcessRunner, RunResult } from "../process/runner";
import type { SshConnection } from "../ssh/connection";
import { shellQuote } from "../ssh/quote";
import { Limiter } from "../process/pool";

export interface HealthCheckOptions {
    /** For anything local (reserved: TCP and HTTP checks use node:net / node:http directly). */
    runner: ProcessRunner;
    /** The host's address: where TCP checks without their own `host` connect to, from the deployer. */
    address: string;
    /** Progress lines ("health: unit nginx.service: attempt 1 of 4 failed …"). */
    log?: (line: string) => void;
    /** Waits between attempts; injectable so unit tests need not wait. */
    sleep?: (ms: number) => Promise<void>;
    /** Delay between the attempts of one check; default 2000 ms. */
    retryDelayMs?: number;
}

export type HealthCheckKind = "command" | "unit" | "tcp" | "http";

export interface HealthCheckResult {
    kind: HealthCheckKind;
    /** What was checked, for people: "command systemctl is-system-running", "unit nginx.service", "tcp 10.0.0.5:5432", "http https://…". */
    name: string;
    healthy: boolean;
    /** Attempts made (1 + retries at most; 0 when the check could not start, e.g. no SSH connection). */
    attempts: number;
    /** Healthy: a short confirmation ("exit 0", "active", "connected", "HTTP 200"). Failing: why, with the last output. */
    detail: string;
}

export interface HealthReport {
    /** True when every check passed (also when there are none). */
    healthy: boolean;
    /** One result per check, in the order of the host file: commands, units, tcp, http. */
    results: HealthCheckResult[];
}

export const DEFAULT_RETRY_DELAY_MS = 2000;
/** Lines of command output kept per failing check. */
export const OUTPUT_TAIL_LINES = 20;
/** Bytes of an HTTP body kept for a failing check. */
export const HTTP_BODY_BYTES = 500;
/**
 * Remote commands in flight at once over the one master. OpenSSH's sshd refuses more than
 * MaxSessions (default 10) sessions per connection; the rest of the deploy may hold one too.
 */
export const MAX_REMOTE_SESSIONS = 8;

/** One attempt's outcome. `final` stops the retries: retrying cannot help (systemctl missing). */
interface Attempt {
    healthy: boolean;
    detail: string;
    final?: boolean;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A systemd unit name as systemctl reads it: without a suffix it is a service. */
export function unitWithSuffix(unit: string): string {
    return unit.includes(".") ? unit : `${unit}.service`;
}

/** "host:port", with brackets around IPv6 addresses. */
function hostPort(host: string, port: number): string {
    return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

export const commandCheckName = (check: Pick<CommandCheck, "command">): string => `command ${check.command.map(shellQuote).join(" ")}`;
export const unitCheckName = (unit: string): string => `unit ${unitWithSuffix(unit)}`;
export const tcpCheckName = (check: Pick<TcpCheck, "host" | "port">, address: string): string => `tcp ${hostPort(check.host ?? address, check.port)}`;
export const httpCheckName = (check: Pick<HttpCheck, "url">): string => `http ${check.url}`;

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

/** stdout then stderr, the last lines of both. */
function outputOf(result: RunResult): string {
    return tail([result.stdout.trimEnd(), result.stderr.trimEnd()].filter(Boolean).join("\n"), OUTPUT_TAIL_LINES);
}

function withOutput(headline: string, output: string): string {
    return output ? `${headline}\n${output}` : headline;
}

/** Seconds `timeout` waits after its TERM before it sends KILL. */
const KILL_AFTER_SECONDS = 5;
/** Exit status of coreutils `timeout` when the command timed out. */
const TIMED_OUT = 124;

/**
 * Runs argv on the host as root, bounded on the host by coreutils `timeout` (TERM, then KILL):
 * killing only the local ssh client would not end the remote command, and the master keeps the
 * client's output open until it ends. The local timeout is a backstop for a host that hangs.
 */
async function runBounded(connection: SshConnection, sessions: Limiter, argv: readonly string[], timeoutSeconds: number): Promise<RunResult> {
    const bounded = ["timeout", `--kill-after=${KILL_AFTER_SECONDS}`, String(timeoutSeconds), ...argv];
    const timeoutMs = (timeoutSeconds + KILL_AFTER_SECONDS + 5) * 1000;
    const result = await sessions.run(() => connection.run(bounded, { asRoot: true, timeoutMs }));
    if (result.code === TIMED_OUT || (result.code === 128 + 9 && result.durationMs >= timeoutSeconds * 1000)) return { ...result, timedOut: true };
    return result;
}

/** The host cannot run `timeout` itself (no coreutils): say so rather than blame the check. */
function missingTimeout(result: RunResult): string | undefined {
    if (result.code !== 127 || !/(^|\s)timeout: (command )?not found/m.test(result.stderr)) return undefined;
    return withOutput("the host has no `timeout` command (coreutils), which bounds every check", outputOf(result));
}

function exitDescription(result: RunResult, timeoutSeconds: number): string {
    if (result.timedOut) return `timed out after ${plural(timeoutSeconds, "second")}`;
    if (result.code === null) return `was killed by ${result.signal ?? "a signal"}`;
    return `exited with ${result.code}`;
}

interface CheckSpec {
    kind: HealthCheckKind;
    name: string;
    retries: number;
    attempt: () => Promise<Attempt>;
    /** Extra detail gathered once after the last failed attempt (systemctl status). */
    afterFailure?: (last: Attempt) => Promise<string>;
}

async function runCheck(spec: CheckSpec, options: HealthCheckOptions): Promise<HealthCheckResult> {
    const log = options.log ?? (() => undefined);
    const sleep = options.sleep ?? defaultSleep;
    const delayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    const maxAttempts = spec.retries + 1;
    let last: Attempt = { healthy: false, detail: "not run" };
    let attempts = 0;
    while (attempts < maxAttempts) {
        attempts += 1;
        try {
            last = await spec.attempt();
        } catch (error) {
            // connection.run throws when the SSH connection itself failed; that is this attempt's result.
            last = { healthy: false, detail: formatError(error) };
        }
        if (last.healthy) {
            log(`health: ${spec.name}: healthy${attempts > 1 ? ` on attempt ${attempts}` : ""}`);
            return { kind: spec.kind, name: spec.name, healthy: true, attempts, detail: last.detail };
        }
        const firstLine = last.detail.split("\n", 1)[0];
        if (last.final || attempts >= maxAttempts) break;
        log(`health: ${spec.name}: attempt ${attempts} of ${maxAttempts} failed (${firstLine}); retrying in ${formatDelay(delayMs)}`);
        await sleep(delayMs);
    }
    let detail = last.detail;
    if (spec.afterFailure) {
        try {
            detail = await spec.afterFailure(last);
        } catch (error) {
            detail = `${detail}\n(could not get more detail: ${formatError(error)})`;
        }
    }
    log(`health: ${spec.name}: FAILED after ${plural(attempts, "attempt")}: ${detail.split("\n", 1)[0]}`);
    return { kind: spec.kind, name: spec.name, healthy: false, attempts, detail };
}

function formatDelay(ms: number): string {
    return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

// --- on the host ---------------------------------------------------------------------------------

function commandAttempt(connection: SshConnection, sessions: Limiter, check: CommandCheck): () => Promise<Attempt> {
    return async () => {
        const result = await runBounded(connection, sessions, check.command, check.timeout);
        if (result.code === 0 && !result.timedOut) return { healthy: true, detail: "exit 0" };
        const noTimeout = missingTimeout(result);
        if (noTimeout) return { healthy: false, detail: noTimeout, final: true };
        return { healthy: false, detail: withOutput(exitDescription(result, check.timeout), outputOf(result)) };
    };
}

const NO_SYSTEMD = /System has not been booted with systemd|Failed to connect to bus/;

/** Why systemctl could not answer at all, or undefined when it did (active or not). */
function systemctlUnavailable(result: RunResult): string | undefined {
    const output = `${result.stdout}\n${result.stderr}`;
    const noTimeout = missingTimeout(result);
    if (noTimeout) return noTimeout;
    // 127: no systemctl on the host; 126: found but cannot be executed.
    if (result.code === 127 || result.code === 126 || /systemctl'?: (command )?not found/.test(output)) {
        return withOutput("systemctl is missing on the host (not a systemd system?): units cannot be checked", outputOf(result));
    }
    if (NO_SYSTEMD.test(output)) {
        return withOutput("systemd is not running on the host (systemctl cannot reach it): units cannot be checked", outputOf(result));
    }
    return undefined;
}

function unitSpec(connection: SshConnection, sessions: Limiter, unit: string): CheckSpec {
    const name = unitWithSuffix(unit);
    const { timeout, retries } = HEALTH_CHECK_DEFAULTS;
    return {
        kind: "unit",
        name: unitCheckName(unit),
        retries,
        attempt: async () => {
            const result = await runBounded(connection, sessions, ["systemctl", "is-active", "--quiet", name], timeout);
            if (result.code === 0 && !result.timedOut) return { healthy: true, detail: "active" };
            const unavailable = systemctlUnavailable(result);
            if (unavailable) return { healthy: false, detail: unavailable, final: true };
            if (result.timedOut) return { healthy: false, detail: withOutput(`systemctl is-active timed out after ${timeout} seconds`, outputOf(result)) };
            return { healthy: false, detail: withOutput(`${name} is not active (systemctl is-active exited with ${result.code ?? result.signal})`, outputOf(result)) };
        },
        afterFailure: async (last) => {
            if (last.final) return last.detail;
            const status = await runBounded(connection, sessions, ["systemctl", "status", name, "--no-pager", "-n", "20"], timeout);
            const output = [status.stdout.trimEnd(), status.stderr.trimEnd()].filter(Boolean).join("\n");
            if (!output) return last.detail;
            return `${last.detail.split("\n", 1)[0]}\n${tail(output, 40)}`;
        },
    };
}

// --- from the deployer ---------------------------------------------------------------------------

function errorDescription(error: unknown): string {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    const message = error instanceof Error ? error.message : String(error);
    switch (code) {
        case "ECONNREFUSED":
            return "connection refused (nothing listens on the port)";
        case "ENOTFOUND":
        case "EAI_AGAIN":
            return `the host name does not resolve (${message})`;
        case "EHOSTUNREACH":
        case "ENETUNREACH":
            return `the host is unreachable (${message})`;
        case "ECONNRESET":
            return "the connection was reset";
        default:
            return message;
    }
}

function tcpAttempt(host: string, port: number, timeoutSeconds: number): Promise<Attempt> {
    return new Promise((resolve) => {
        const socket = net.createConnection({ host, port });
        let settled = false;
        const done = (attempt: Attempt) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            socket.destroy();
            resolve(attempt);
        };
        const timer = setTimeout(() => done({ healthy: false, detail: `no connection within ${plural(timeoutSeconds, "second")}` }), timeoutSeconds * 1000);
        socket.once("connect", () => done({ healthy: true, detail: "connected" }));
        socket.on("error", (error) => done({ healthy: false, detail: errorDescription(error) }));
    });
}

function httpAttempt(check: HttpCheck): Promise<Attempt> {
    return new Promise((resolve) => {
        const url = new URL(check.url);
        const client = url.protocol === "https:" ? https : http;
        const expected = check.status === undefined ? "any 2xx" : String(check.status);
        let settled = false;
        const finish = (attempt: Attempt) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            request.destroy();
            resolve(attempt);
        };
        // No agent: no keep-alive socket outlives the check. node:http never follows redirects.
        const request = client.get(url, { agent: false, headers: { "user-agent": "nixos-fleet health check", accept: "*/*" } }, (response) => {
            // Destroying the request mid-body makes the response emit "aborted" errors: expected.
            response.on("error", () => undefined);
            const status = response.statusCode ?? 0;
            const healthy = check.status === undefined ? status >= 200 && status < 300 : status === check.status;
            if (healthy) {
                finish({ healthy: true, detail: `HTTP ${status}` });
                return;
            }
            const location = response.headers.location;
            const headline =
                `HTTP ${status} ${response.statusMessage ?? ""}`.trimEnd() +
                ` (expected ${expected})` +
                (location && status >= 300 && status < 400 ? `; redirects are not followed, Location: ${location}` : "");
            const chunks: Buffer[] = [];
            let size = 0;
            const withBody = () => {
                const body = Buffer.concat(chunks).subarray(0, HTTP_BODY_BYTES).toString("utf8").trimEnd();
                finish({ healthy: false, detail: withOutput(headline, body) });
            };
            response.on("data", (chunk: Buffer) => {
                chunks.push(chunk);
                size += chunk.length;
                if (size >= HTTP_BODY_BYTES) withBody();
            });
            response.once("end", withBody);
            response.once("close", withBody);
        });
        const timer = setTimeout(
            () => finish({ healthy: false, detail: `no answer within ${plural(check.timeout, "second")}` }),
            check.timeout * 1000,
        );
        request.on("error", (error) => finish({ healthy: false, detail: errorDescription(error) }));
    });
}

// --- the whole verify phase ----------------------------------------------------------------------

/**
 * Runs every health check of a host and reports each one. `connection` must reach the host (its
 * master is opened here if it is not yet); commands and units run as root through it.
 */
export async function runHealthChecks(connection: SshConnection, checks: HealthChecks, options: HealthCheckOptions): Promise<HealthReport> {
    const sessions = new Limiter(MAX_REMOTE_SESSIONS);
    const remoteCount = checks.commands.length + checks.units.length;
    // One master for all remote checks: opened once here, not raced by concurrent checks.
    let connectError: string | undefined;
    if (remoteCount > 0) {
        try {
            await connection.open();
        } catch (error) {
            connectError = formatError(error);
        }
    }

    const specs: CheckSpec[] = [
        ...checks.commands.map((check): CheckSpec => ({
            kind: "command",
            name: commandCheckName(check),
            retries: check.retries,
            attempt: commandAttempt(connection, sessions, check),
        })),
        ...checks.units.map((unit) => unitSpec(connection, sessions, unit)),
        ...checks.tcp.map((check): CheckSpec => {
            const host = check.host ?? options.address;
            return { kind: "tcp", name: tcpCheckName(check, options.address), retries: check.retries, attempt: () => tcpAttempt(host, check.port, check.timeout) };
        }),
        ...checks.http.map((check): CheckSpec => ({ kind: "http", name: httpCheckName(check), retries: check.retries, attempt: () => httpAttempt(check) })),
    ];

    const results = await Promise.all(
        specs.map((spec) => {
            if (connectError !== undefined && (spec.kind === "command" || spec.kind === "unit")) {
                options.log?.(`health: ${spec.name}: not run, no SSH connection`);
                return { kind: spec.kind, name: spec.name, healthy: false, attempts: 0, detail: `not run: could not connect to the host\n${connectError}` };
            }
            return runCheck(spec, options);
        }),
    );
    return { healthy: results.every((result) => result.healthy), results };
}

/** "2 of 5 health checks failed: unit nginx.service, http https://…" — a one-line message. */
export function summarizeHealthFailures(report: HealthReport): string {
    const failing = report.results.filter((result) => !result.healthy);
    if (failing.length === 0) return `all ${plural(report.results.length, "health check")} passed`;
    return `${failing.length} of ${plural(report.results.length, "health check")} failed: ${failing.map((result) => result.name).join(", ")}`;
}

/** Lines of detail a FleetError shows (formatFleetError keeps the last 40): shared among the blocks. */
const DETAIL_LINE_BUDGET = 40;

/**
 * The failing checks, one block each (name, attempts, then the check's detail indented), for a
 * FleetError's `detail`. The blocks share formatFleetError's 40 lines, so with many failures each
 * block keeps only the end of its detail; every failing check keeps its header line.
 */
export function formatHealthFailures(report: HealthReport): string {
    const failing = report.results.filter((result) => !result.healthy);
    if (failing.length === 0) return "";
    const perBlock = Math.max(3, Math.floor(DETAIL_LINE_BUDGET / failing.length));
    return failing
        .map((result) => {
            const header = `✗ ${result.name} (${result.attempts === 0 ? "not run" : plural(result.attempts, "attempt")})`;
            const detail = result.detail.trim() ? tail(result.detail, Math.max(1, perBlock - 2)).split("\n").map((line) => `    ${line}`) : [];
            return [header, ...detail].join("\n");
        })
        .join("\n");
}
