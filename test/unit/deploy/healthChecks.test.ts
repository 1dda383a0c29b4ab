import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { healthChecksSchema, type HealthChecksInput } from "../../../src/config/healthChecks";
import {
    formatHealthFailures,
    MAX_REMOTE_SESSIONS,
    runHealthChecks,
    summarizeHealthFailures,
    unitWithSuffix,
    type HealthCheckOptions,
    type HealthReport,
} from "../../../src/deploy/healthChecks";
import { FleetError, formatFleetError } from "../../../src/errors";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeRunner, masterStart, type Matcher, type RecordedCall } from "../helpers/fakeRunner";
import { runtimeDir, target } from "../helpers/fixtures";

const checks = (input: HealthChecksInput) => healthChecksSchema.parse(input);

/** Every check command is bounded on the host: `timeout --kill-after=5 <seconds> argv…`. */
const checkedArgv = (call: RecordedCall): string[] | undefined =>
    call.remoteCommand?.[0] === "timeout" && call.remoteCommand[1] === "--kill-after=5" ? call.remoteCommand.slice(3) : undefined;
/** A check command (inside its timeout wrapper) whose words start with `prefix`. */
const remote = (...prefix: string[]): Matcher => (call) => {
    const argv = checkedArgv(call);
    return argv !== undefined && prefix.every((word, i) => argv[i] === word);
};

function setup(overrides: Partial<Parameters<typeof target>[0]> = {}) {
    const runner = new FakeRunner();
    const connection = new SshConnection(target(overrides), { runner: runner.run, runtimeDir: runtimeDir() });
    const slept: number[] = [];
    const lines: string[] = [];
    const options: HealthCheckOptions = {
        runner: runner.run,
        address: "127.0.0.1",
        log: (line) => lines.push(line),
        sleep: async (ms) => {
            slept.push(ms);
        },
    };
    return { runner, connection, slept, lines, options };
}

const byName = (report: HealthReport, name: string) => {
    const result = report.results.find((r) => r.name === name);
    if (!result) throw new Error(`no result named ${name} in ${report.results.map((r) => r.name).join(", ")}`);
    return result;
};

// Local servers on 127.0.0.1 for the deployer-side checks.
let httpServer: http.Server;
let httpPort = 0;
let silentServer: net.Server;
let silentPort = 0;
let closedPort = 0;
const silentSockets = new Set<net.Socket>();
/** Connections the silent server accepted so far. */
let silentConnections = 0;
let flakyHits = 0;

async function listen(server: net.Server): Promise<number> {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as net.AddressInfo).port;
}

beforeAll(async () => {
    httpServer = http.createServer((request, response) => {
        switch (request.url) {
            case "/ok":
                response.end("fine\n");
                return;
            case "/created":
                response.writeHead(201).end();
                return;
            case "/down":
                response.writeHead(503, { "content-type": "text/plain" }).end("database unreachable\n");
                return;
            case "/big":
                response.writeHead(500).end("x".repeat(10_000) + "END");
                return;
            case "/moved":
                response.writeHead(302, { location: "/login" }).end();
                return;
            case "/teapot":
                response.writeHead(418).end("short and stout");
                return;
            case "/flaky":
                flakyHits += 1;
                response.writeHead(flakyHits < 3 ? 502 : 200).end();
                return;
            default:
                response.writeHead(404).end("not found");
        }
    });
    httpPort = await listen(httpServer);
    // Accepts connections and never answers: HTTP checks against it must time out.
    silentServer = net.createServer((socket) => {
        silentConnections += 1;
        silentSockets.add(socket);
        socket.on("close", () => silentSockets.delete(socket));
    });
    silentPort = await listen(silentServer);
    const probe = net.createServer();
    closedPort = await listen(probe);
    await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
    for (const socket of silentSockets) socket.destroy();
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    await new Promise<void>((resolve) => silentServer.close(() => resolve()));
});

describe("command checks", () => {
    it("runs argv on the host as root (sudo -n for a non-root user), exit 0 is healthy, bounded by the timeout", async () => {
        const { runner, connection, options, slept } = setup({ user: "deploy" });
        runner.on(remote("systemctl", "is-system-running"), { stdout: "running\n" });
        const report = await runHealthChecks(connection, checks({ commands: [{ command: ["systemctl", "is-system-running"], timeout: 7 }] }), options);
        expect(report).toEqual({
            healthy: true,
            results: [{ kind: "command", name: "command systemctl is-system-running", healthy: true, attempts: 1, detail: "exit 0" }],
        });
        const [call] = runner.matching(remote("systemctl", "is-system-running"));
        expect(call!.viaSudo).toBe(true);
        expect(call!.remoteCommand).toEqual(["timeout", "--kill-after=5", "7", "systemctl", "is-system-running"]);
        // The host's own timeout bounds the attempt; the local one is only a backstop.
        expect(call!.options.timeoutMs).toBe(17_000);
        expect(slept).toEqual([]);
        expect(runner.matching(masterStart)).toHaveLength(1);
    });

    it("never builds a shell string from config: odd arguments reach the host as the same words", async () => {
        const { runner, connection, options } = setup();
        const argv = ["test", "-e", "/var/lib/my app/$(reboot)'; rm -rf /", "&&", "true"];
        runner.on(remote("test"), {});
        const report = await runHealthChecks(connection, checks({ commands: [{ command: argv }] }), options);
        expect(report.healthy).toBe(true);
        expect(checkedArgv(runner.matching(remote("test"))[0]!)).toEqual(argv);
        expect(report.results[0]!.name).toBe(`command test -e '/var/lib/my app/$(reboot)'\\''; rm -rf /' '&&' true`);
    });

    it("retries `retries` times with the delay in between, and keeps the last attempt's output", async () => {
        const { runner, connection, options, slept, lines } = setup();
        let n = 0;
        runner.on(remote("check-db"), () => {
            n += 1;
            return { code: 2, stdout: `attempt ${n} stdout\n`, stderr: `attempt ${n}: connection refused\n` };
        });
        const report = await runHealthChecks(connection, checks({ commands: [{ command: ["check-db"], retries: 2 }] }), { ...options, retryDelayMs: 500 });
        expect(runner.matching(remote("check-db"))).toHaveLength(3);
        expect(slept).toEqual([500, 500]);
        expect(report.healthy).toBe(false);
        expect(report.results[0]).toEqual({
            kind: "command",
            name: "command check-db",
            healthy: false,
            attempts: 3,
            detail: "exited with 2\nattempt 3 stdout\nattempt 3: connection refused",
        });
        expect(lines).toContain("health: command check-db: attempt 1 of 3 failed (exited with 2); retrying in 500 ms");
        expect(lines.at(-1)).toBe("health: command check-db: FAILED after 3 attempts: exited with 2");
    });

    it("stops retrying as soon as an attempt passes; the default delay is 2 s", async () => {
        const { runner, connection, options, slept } = setup();
        runner.once(remote("curl"), { code: 7 }).once(remote("curl"), { code: 7 }).on(remote("curl"), {});
        const report = await runHealthChecks(connection, checks({ commands: [{ command: ["curl", "-fsS", "http://localhost/"] }] }), options);
        expect(report.results[0]).toMatchObject({ healthy: true, attempts: 3, detail: "exit 0" });
        expect(slept).toEqual([2000, 2000]);
    });

    it("retries: 0 means exactly one attempt", async () => {
        const { runner, connection, options, slept } = setup();
        runner.on(remote("false"), { code: 1 });
        const report = await runHealthChecks(connection, checks({ commands: [{ command: ["false"], retries: 0 }] }), options);
        expect(report.results[0]).toMatchObject({ healthy: false, attempts: 1, detail: "exited with 1" });
        expect(slept).toEqual([]);
    });

    it("a timed-out attempt is a failure that says so, with the output so far", async () => {
        const { runner, connection, options } = setup();
        // First attempt: the host's `timeout` ended it (124); second: the local backstop killed ssh.
        runner
            .once(remote("sleep"), { code: 124, stdout: "waiting...\n" })
            .once(remote("sleep"), { code: null, signal: "SIGKILL", timedOut: true, stdout: "still waiting...\n" });
        const report = await runHealthChecks(connection, checks({ commands: [{ command: ["sleep", "100"], timeout: 3, retries: 1 }] }), options);
        expect(report.results[0]).toMatchObject({ healthy: false, attempts: 2, detail: "timed out after 3 seconds\nstill waiting..." });
        const calls = runner.matching(remote("sleep"));
        expect(calls.map((call) => call.remoteCommand!.slice(0, 3))).toEqual([["timeout", "--kill-after=5", "3"], ["timeout", "--kill-after=5", "3"]]);
        for (const call of calls) expect(call.options.timeoutMs).toBe(13_000);
    });

    it("a host without coreutils' timeout is reported as such, not as a failing check", async () => {
        const { runner, connection, options, slept } = setup();
        runner.on((call) => call.remoteCommand?.[0] === "timeout", { code: 127, stderr: "sh: 1: timeout: not found\n" });
        const report = await runHealthChecks(connection, checks({ commands: [{ command: ["true"] }], units: ["nginx"] }), options);
        for (const result of report.results) {
            expect(result).toMatchObject({ healthy: false, attempts: 1 });
            expect(result.detail).toBe("the host has no `timeout` command (coreutils), which bounds every check\nsh: 1: timeout: not found");
        }
        expect(slept).toEqual([]);
    });

    it("keeps only the tail of long output", async () => {
        const { runner, connection, options } = setup();
        const output = Array.from({ length: 100 }, (_, i) => `line ${i + 1}`).join("\n");
        runner.on(remote("noisy"), { code: 1, stdout: output });
        const report = await runHealthChecks(connection, checks({ commands: [{ command: ["noisy"], retries: 0 }] }), options);
        const detail = report.results[0]!.detail.split("\n");
        expect(detail[0]).toBe("exited with 1");
        expect(detail).toContain("line 100");
        expect(detail).not.toContain("line 50");
        expect(detail.length).toBeLessThanOrEqual(22);
    });

    it("a lost SSH connection fails the attempt (it is retried) instead of throwing", async () => {
        const { runner, connection, options } = setup();
        runner
            .once(remote("true"), { code: 255, stderr: "Control socket connect(/tmp/x.sock): Connection refused\n" })
            .on(remote("true"), {});
        const report = await runHealthChecks(connection, checks({ commands: [{ command: ["true"] }] }), options);
        expect(report.results[0]).toMatchObject({ healthy: true, attempts: 2 });
    });

    it("when the host cannot be reached, remote checks are reported as not run and local ones still run", async () => {
        const { runner, connection, options } = setup();
        runner.on(masterStart, { code: 255, stderr: "ssh: connect to host alpha.example.org port 22: Connection refused\n" });
        const report = await runHealthChecks(
            connection,
            checks({ commands: [{ command: ["true"] }], units: ["nginx"], tcp: [{ port: httpPort, host: "127.0.0.1" }] }),
            options,
        );
        expect(runner.matching(masterStart)).toHaveLength(1); // one handshake, not one per check and attempt
        expect(report.healthy).toBe(false);
        expect(byName(report, "command true")).toMatchObject({ healthy: false, attempts: 0 });
        expect(byName(report, "command true").detail).toMatch(/^not run: could not connect to the host\n.*Connection refused/s);
        expect(byName(report, "unit nginx.service")).toMatchObject({ healthy: false, attempts: 0 });
        expect(byName(report, `tcp 127.0.0.1:${httpPort}`)).toMatchObject({ healthy: true });
    });
});

describe("unit checks", () => {
    it("a name without a dot means .service; other suffixes are kept", () => {
        expect(unitWithSuffix("nginx")).toBe("nginx.service");
        expect(unitWithSuffix("getty@tty1")).toBe("getty@tty1.service");
        expect(unitWithSuffix("sshd.socket")).toBe("sshd.socket");
        expect(unitWithSuffix("nginx.service")).toBe("nginx.service");
    });

    it("runs systemctl is-active --quiet as root with the default timeout", async () => {
        const { runner, connection, options } = setup({ user: "deploy" });
        runner.on(remote("systemctl", "is-active"), {});
        const report = await runHealthChecks(connection, checks({ units: ["nginx", "sshd.socket"] }), options);
        expect(report).toEqual({
            healthy: true,
            results: [
                { kind: "unit", name: "unit nginx.service", healthy: true, attempts: 1, detail: "active" },
                { kind: "unit", name: "unit sshd.socket", healthy: true, attempts: 1, detail: "active" },
            ],
        });
        const calls = runner.matching(remote("systemctl", "is-active"));
        expect(calls.map((call) => call.remoteCommand)).toEqual([
            ["timeout", "--kill-after=5", "10", "systemctl", "is-active", "--quiet", "nginx.service"],
            ["timeout", "--kill-after=5", "10", "systemctl", "is-active", "--quiet", "sshd.socket"],
        ]);
        for (const call of calls) expect(call.viaSudo).toBe(true);
    });

    it("an inactive unit is retried (3 retries by default), then its systemctl status is in the report", async () => {
        const { runner, connection, options, slept } = setup();
        runner.on(remote("systemctl", "is-active"), { code: 3 });
        const status = [
            "× nginx.service - Nginx Web Server",
            "     Loaded: loaded (/etc/systemd/system/nginx.service; enabled; preset: enabled)",
            "     Active: failed (Result: exit-code) since Tue 2025-06-03 10:00:00 UTC; 5s ago",
            "Jun 03 10:00:00 psi nginx[123]: nginx: [emerg] unknown directive \"lisen\"",
        ].join("\n");
        runner.on(remote("systemctl", "status"), { code: 3, stdout: `${status}\n` });
        const report = await runHealthChecks(connection, checks({ units: ["nginx"] }), options);
        expect(runner.matching(remote("systemctl", "is-active"))).toHaveLength(4);
        expect(slept).toEqual([2000, 2000, 2000]);
        const statusCalls = runner.matching(remote("systemctl", "status"));
        expect(statusCalls.map(checkedArgv)).toEqual([["systemctl", "status", "nginx.service", "--no-pager", "-n", "20"]]);
        expect(report.results[0]).toEqual({
            kind: "unit",
            name: "unit nginx.service",
            healthy: false,
            attempts: 4,
            detail: `nginx.service is not active (systemctl is-active exited with 3)\n${status}`,
        });
    });

    it("a unit that becomes active on a later attempt is healthy and no status is read", async () => {
        const { runner, connection, options } = setup();
        runner.once(remote("systemctl", "is-active"), { code: 3 }).on(remote("systemctl", "is-active"), {});
        const report = await runHealthChecks(connection, checks({ units: ["postgresql"] }), options);
        expect(report.results[0]).toMatchObject({ healthy: true, attempts: 2 });
        expect(runner.matching(remote("systemctl", "status"))).toHaveLength(0);
    });

    it("a host without systemctl fails at once with a clear message (retrying cannot help)", async () => {
        const { runner, connection, options, slept } = setup();
        runner.on(remote("systemctl"), { code: 127, stderr: "timeout: failed to run command ‘systemctl’: No such file or directory\n" });
        const report = await runHealthChecks(connection, checks({ units: ["nginx"] }), options);
        expect(report.results[0]).toMatchObject({ healthy: false, attempts: 1 });
        expect(report.results[0]!.detail).toBe(
            "systemctl is missing on the host (not a systemd system?): units cannot be checked\ntimeout: failed to run command ‘systemctl’: No such file or directory",
        );
        expect(slept).toEqual([]);
        expect(runner.matching(remote("systemctl", "status"))).toHaveLength(0);
    });

    it("a host where systemd is not running fails at once and says so", async () => {
        const { runner, connection, options } = setup();
        runner.on(remote("systemctl"), {
            code: 1,
            stderr: "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n",
        });
        const report = await runHealthChecks(connection, checks({ units: ["nginx"] }), options);
        expect(report.results[0]).toMatchObject({ healthy: false, attempts: 1 });
        expect(report.results[0]!.detail).toMatch(/^systemd is not running on the host \(systemctl cannot reach it\): units cannot be checked\nSystem has not been booted/);
    });
});

describe("tcp checks (from the deployer)", () => {
    it("connects to options.address by default and to `host` when given", async () => {
        const { connection, options, runner } = setup();
        const report = await runHealthChecks(
            connection,
            checks({ tcp: [{ port: httpPort }, { port: httpPort, host: "127.0.0.1" }, { port: httpPort, host: "::1", retries: 0 }] }),
            { ...options, address: "127.0.0.1" },
        );
        expect(report.results[0]).toEqual({ kind: "tcp", name: `tcp 127.0.0.1:${httpPort}`, healthy: true, attempts: 1, detail: "connected" });
        expect(report.results[1]).toMatchObject({ healthy: true });
        // Our server listens on IPv4 only: the IPv6 loopback must not count as the same port.
        expect(report.results[2]).toMatchObject({ name: `tcp [::1]:${httpPort}`, healthy: false, attempts: 1 });
        expect(runner.calls).toHaveLength(0); // no SSH for deployer-side checks
    });

    it("a closed port fails every attempt with 'connection refused'", async () => {
        const { connection, options, slept } = setup();
        const report = await runHealthChecks(connection, checks({ tcp: [{ port: closedPort, retries: 2 }] }), options);
        expect(report.results[0]).toEqual({
            kind: "tcp",
            name: `tcp 127.0.0.1:${closedPort}`,
            healthy: false,
            attempts: 3,
            detail: "connection refused (nothing listens on the port)",
        });
        expect(slept).toHaveLength(2);
    });

    it("a name that does not resolve says so", async () => {
        const { connection, options } = setup();
        const report = await runHealthChecks(connection, checks({ tcp: [{ port: 80, host: "no-such-host.invalid", retries: 0 }] }), options);
        expect(report.results[0]).toMatchObject({ healthy: false, attempts: 1 });
        expect(report.results[0]!.detail).toMatch(/does not resolve|unreachable/);
    });
});

describe("http checks (from the deployer)", () => {
    const url = (path: string) => `http://127.0.0.1:${httpPort}${path}`;

    it("any 2xx is healthy without `status`", async () => {
        const { connection, options } = setup();
        const report = await runHealthChecks(connection, checks({ http: [{ url: url("/ok") }, { url: url("/created") }] }), options);
        expect(report.results).toEqual([
            { kind: "http", name: `http ${url("/ok")}`, healthy: true, attempts: 1, detail: "HTTP 200" },
            { kind: "http", name: `http ${url("/created")}`, healthy: true, attempts: 1, detail: "HTTP 201" },
        ]);
    });

    it("with `status` only that status is healthy, even a non-2xx one", async () => {
        const { connection, options } = setup();
        const report = await runHealthChecks(
            connection,
            checks({ http: [{ url: url("/teapot"), status: 418 }, { url: url("/ok"), status: 204, retries: 0 }] }),
            options,
        );
        expect(report.results[0]).toMatchObject({ healthy: true, detail: "HTTP 418" });
        expect(report.results[1]).toMatchObject({ healthy: false, attempts: 1, detail: "HTTP 200 OK (expected 204)\nfine" });
    });

    it("a failing answer reports the status and the start of the body", async () => {
        const { connection, options } = setup();
        const report = await runHealthChecks(connection, checks({ http: [{ url: url("/down"), retries: 1 }] }), options);
        expect(report.results[0]).toMatchObject({
            healthy: false,
            attempts: 2,
            detail: "HTTP 503 Service Unavailable (expected any 2xx)\ndatabase unreachable",
        });
    });

    it("keeps only the first 500 bytes of a body", async () => {
        const { connection, options } = setup();
        const report = await runHealthChecks(connection, checks({ http: [{ url: url("/big"), retries: 0 }] }), options);
        const [headline, body] = report.results[0]!.detail.split("\n");
        expect(headline).toBe("HTTP 500 Internal Server Error (expected any 2xx)");
        expect(body).toBe("x".repeat(500));
    });

    it("does not follow redirects", async () => {
        const { connection, options } = setup();
        const report = await runHealthChecks(connection, checks({ http: [{ url: url("/moved"), retries: 0 }] }), options);
        expect(report.results[0]).toMatchObject({
            healthy: false,
            detail: "HTTP 302 Found (expected any 2xx); redirects are not followed, Location: /login",
        });
    });

    it("retries until the service answers", async () => {
        const { connection, options, slept } = setup();
        flakyHits = 0;
        const report = await runHealthChecks(connection, checks({ http: [{ url: url("/flaky") }] }), options);
        expect(report.results[0]).toMatchObject({ healthy: true, attempts: 3, detail: "HTTP 200" });
        expect(slept).toEqual([2000, 2000]);
    });

    it("a server that never answers is cut off after `timeout` seconds per attempt", async () => {
        const { connection, options, slept } = setup();
        /** Lets real I/O happen (setImmediate is not faked) until `ready`, for at most 2 s of real time. */
        const until = async (ready: () => boolean) => {
            const deadline = performance.now() + 2000;
            while (!ready()) {
                if (performance.now() > deadline) throw new Error("the check never reached the silent server");
                await new Promise((resolve) => setImmediate(resolve));
            }
        };
        // The sockets are real; only the check's timer runs on fake time, so no test waits for it.
        vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
        try {
            const connectionsBefore = silentConnections;
            let settled = false;
            const pending = runHealthChecks(
                connection,
                checks({ http: [{ url: `http://127.0.0.1:${silentPort}/health`, timeout: 1, retries: 1 }] }),
                options,
            ).finally(() => (settled = true));
            for (const attempt of [1, 2]) {
                // Each attempt connects, and gets no answer: cut off at 1 s, not before.
                await until(() => silentConnections === connectionsBefore + attempt);
                await vi.advanceTimersByTimeAsync(999);
                expect(settled).toBe(false);
                await vi.advanceTimersByTimeAsync(1);
            }
            const report = await pending;
            expect(report.results[0]).toMatchObject({ healthy: false, attempts: 2, detail: "no answer within 1 second" });
            expect(slept).toEqual([2000]);
            expect(silentConnections).toBe(connectionsBefore + 2);
        } finally {
            vi.useRealTimers();
        }
    });

    it("nothing listening: connection refused", async () => {
        const { connection, options } = setup();
        const report = await runHealthChecks(connection, checks({ http: [{ url: `http://127.0.0.1:${closedPort}/`, retries: 0 }] }), options);
        expect(report.results[0]).toMatchObject({ healthy: false, detail: "connection refused (nothing listens on the port)" });
    });
});

describe("the whole report", () => {
    it("no checks: healthy, nothing run", async () => {
        const { runner, connection, options } = setup();
        expect(await runHealthChecks(connection, checks({}), options)).toEqual({ healthy: true, results: [] });
        expect(runner.calls).toHaveLength(0);
    });

    it("runs every check even after failures, in host-file order, and is unhealthy if any fails", async () => {
        const { runner, connection, options } = setup();
        runner.on(remote("false"), { code: 1 });
        runner.on(remote("true"), {});
        runner.on(remote("systemctl", "is-active"), (call) => (checkedArgv(call)![3] === "ok.service" ? {} : { code: 3 }));
        runner.on(remote("systemctl", "status"), { code: 3, stdout: "Active: inactive (dead)\n" });
        const report = await runHealthChecks(
            connection,
            checks({
                commands: [{ command: ["false"], retries: 0 }, { command: ["true"] }],
                units: ["broken", "ok"],
                tcp: [{ port: closedPort, retries: 0 }, { port: httpPort }],
                http: [{ url: `http://127.0.0.1:${httpPort}/down`, retries: 0 }, { url: `http://127.0.0.1:${httpPort}/ok` }],
            }),
            options,
        );
        expect(report.healthy).toBe(false);
        expect(report.results.map((r) => [r.name, r.healthy])).toEqual([
            ["command false", false],
            ["command true", true],
            ["unit broken.service", false],
            ["unit ok.service", true],
            [`tcp 127.0.0.1:${closedPort}`, false],
            [`tcp 127.0.0.1:${httpPort}`, true],
            [`http http://127.0.0.1:${httpPort}/down`, false],
            [`http http://127.0.0.1:${httpPort}/ok`, true],
        ]);
    });

    it("runs checks concurrently, the attempts of one check one after another", async () => {
        const { runner, connection, options } = setup();
        let inFlight = 0;
        let maxInFlight = 0;
        const perCheck = new Map<string, number>();
        let perCheckMax = 0;
        runner.on(remote("probe"), async (call) => {
            const id = checkedArgv(call)![1]!;
            inFlight += 1;
            perCheck.set(id, (perCheck.get(id) ?? 0) + 1);
            maxInFlight = Math.max(maxInFlight, inFlight);
            perCheckMax = Math.max(perCheckMax, perCheck.get(id)!);
            await new Promise((resolve) => setTimeout(resolve, 20));
            inFlight -= 1;
            perCheck.set(id, perCheck.get(id)! - 1);
            return { code: 1 };
        });
        const report = await runHealthChecks(
            connection,
            checks({ commands: ["a", "b", "c"].map((id) => ({ command: ["probe", id], retries: 2 })) }),
            options,
        );
        expect(report.results.every((r) => r.attempts === 3)).toBe(true);
        expect(maxInFlight).toBe(3);
        expect(perCheckMax).toBe(1);
    });

    it(`keeps at most ${MAX_REMOTE_SESSIONS} remote commands in flight on the one master (sshd's MaxSessions)`, async () => {
        const { runner, connection, options } = setup();
        let inFlight = 0;
        let maxInFlight = 0;
        runner.on(remote("probe"), async () => {
            inFlight += 1;
            maxInFlight = Math.max(maxInFlight, inFlight);
            await new Promise((resolve) => setTimeout(resolve, 10));
            inFlight -= 1;
            return {};
        });
        const count = MAX_REMOTE_SESSIONS * 2 + 3;
        const report = await runHealthChecks(
            connection,
            checks({ commands: Array.from({ length: count }, (_, i) => ({ command: ["probe", String(i)] })) }),
            options,
        );
        expect(report.healthy).toBe(true);
        expect(report.results).toHaveLength(count);
        expect(maxInFlight).toBe(MAX_REMOTE_SESSIONS);
    });
});

describe("formatHealthFailures", () => {
    const report: HealthReport = {
        healthy: false,
        results: [
            { kind: "command", name: "command systemctl is-system-running", healthy: false, attempts: 4, detail: "exited with 1\ndegraded" },
            { kind: "unit", name: "unit ok.service", healthy: true, attempts: 1, detail: "active" },
            { kind: "tcp", name: "tcp 10.0.0.5:5432", healthy: false, attempts: 1, detail: "connection refused (nothing listens on the port)" },
            { kind: "unit", name: "unit nginx.service", healthy: false, attempts: 0, detail: "not run: could not connect to the host" },
        ],
    };

    it("one block per failing check: name, attempts, the detail indented; passing checks left out", () => {
        expect(formatHealthFailures(report)).toBe(
            [
                "✗ command systemctl is-system-running (4 attempts)",
                "    exited with 1",
                "    degraded",
                "✗ tcp 10.0.0.5:5432 (1 attempt)",
                "    connection refused (nothing listens on the port)",
                "✗ unit nginx.service (not run)",
                "    not run: could not connect to the host",
            ].join("\n"),
        );
    });

    it("is empty for a healthy report", () => {
        expect(formatHealthFailures({ healthy: true, results: [report.results[1]!] })).toBe("");
    });

    it("summarizeHealthFailures names the failing checks on one line", () => {
        expect(summarizeHealthFailures(report)).toBe("3 of 4 health checks failed: command systemctl is-system-running, tcp 10.0.0.5:5432, unit nginx.service");
        expect(summarizeHealthFailures({ healthy: true, results: [] })).toBe("all 0 health checks passed");
    });

    it("every failing check keeps its header inside a FleetError's 40 detail lines, however long the details", () => {
        const long = Array.from({ length: 60 }, (_, i) => `status line ${i}`).join("\n");
        const many: HealthReport = {
            healthy: false,
            results: Array.from({ length: 5 }, (_, i) => ({ kind: "unit" as const, name: `unit u${i}.service`, healthy: false, attempts: 4, detail: `u${i}.service is not active\n${long}` })),
        };
        const shown = formatFleetError(new FleetError({ phase: "verify", host: "psi", message: summarizeHealthFailures(many), detail: formatHealthFailures(many) }));
        for (let i = 0; i < 5; i++) expect(shown).toContain(`  | ✗ unit u${i}.service (4 attempts)`);
        expect(shown).toContain("status line 59");
    });
});

describe("docs/host-config.md", () => {
    const docs = fs.readFileSync(path.resolve(__dirname, "../../../docs/host-config.md"), "utf8");
    const section = docs.slice(docs.indexOf("\n## Health checks\n"));

    it("the Health checks example is valid", () => {
        const block = /```yaml\n(# hosts\/web1\.yaml[\s\S]*?)```/.exec(section)?.[1];
        expect(block).toBeDefined();
        const parsed = healthChecksSchema.parse((parse(block!) as { healthChecks: unknown }).healthChecks);
        expect(parsed.units).toEqual(["nginx", "postgresql.service"]);
        expect(parsed.tcp[1]).toEqual({ port: 6379, host: "10.0.0.7", timeout: 3, retries: 3 });
    });

    it("the example error detail is what formatHealthFailures prints", () => {
        const report: HealthReport = {
            healthy: false,
            results: [
                {
                    kind: "unit",
                    name: "unit nginx.service",
                    healthy: false,
                    attempts: 4,
                    detail: [
                        "nginx.service is not active (systemctl is-active exited with 3)",
                        "× nginx.service - Nginx Web Server",
                        "     Active: failed (Result: exit-code) since Tue 2025-06-03 10:00:00 UTC; 5s ago",
                        'Jun 03 10:00:00 web1 nginx[812]: nginx: [emerg] unknown directive "lisen"',
                    ].join("\n"),
                },
                { kind: "tcp", name: "tcp 10.0.0.7:6379", healthy: false, attempts: 4, detail: "connection refused (nothing listens on the port)" },
            ],
        };
        const shown = formatFleetError(new FleetError({ phase: "verify", host: "web1", message: "2 of 6 health checks failed: unit nginx.service, tcp 10.0.0.7:6379", detail: formatHealthFailures(report) }));
        expect(section).toContain(`\`\`\`text\n${shown}\n\`\`\``);
    });
});
