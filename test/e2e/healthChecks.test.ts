// Health checks against a real sandbox host over a real SSH master: commands run on the host as
// root (directly and through sudo), TCP and HTTP checks from the deployer against local servers,
// and unit checks against the host's real systemd (and a host without systemctl, which must fail
// with a message that says so).
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { healthChecksSchema, type HealthChecksInput } from "../../src/config/healthChecks";
import { formatHealthFailures, runHealthChecks, type HealthCheckOptions } from "../../src/deploy/healthChecks";
import { runProcess } from "../../src/process/runner";
import { SshConnection } from "../../src/ssh/connection";
import { SandboxFleet } from "../../sandbox/fleet";

const NAME = "hc";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nf-hc-"));
const fleet = new SandboxFleet({ dir: path.join(dir, "sandbox"), portBase: 32200 });
let root: SshConnection;
let deployer: SshConnection;
let server: http.Server;
let serverPort = 0;
let closedPort = 0;
const lines: string[] = [];

const checks = (input: HealthChecksInput) => healthChecksSchema.parse(input);
const options = (): HealthCheckOptions => ({ runner: runProcess, address: "127.0.0.1", retryDelayMs: 100, log: (line) => lines.push(line) });

async function listen(target: net.Server): Promise<number> {
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    return (target.address() as net.AddressInfo).port;
}

beforeAll(async () => {
    await fleet.start([NAME]);
    const sshConfigFile = fleet.layout.sshConfigFile;
    root = new SshConnection({ name: NAME, address: NAME, user: "root", sshConfigFile }, { runner: runProcess, runtimeDir: path.join(dir, "rt") });
    deployer = new SshConnection({ name: NAME, address: NAME, user: "deployer", sshConfigFile }, { runner: runProcess, runtimeDir: path.join(dir, "rt-deployer") });
    await root.open();
    server = http.createServer((request, response) => {
        if (request.url === "/healthz") response.end("ok\n");
        else response.writeHead(503).end("maintenance: back soon\n");
    });
    serverPort = await listen(server);
    const probe = net.createServer();
    closedPort = await listen(probe);
    await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
    await root?.close();
    await deployer?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await fleet.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
});

describe("health checks on a sandbox host", () => {
    it("a command check runs on the host as root and passes", async () => {
        // Passes only on the host itself (its own hostname) and as root.
        const command = ["sh", "-c", `[ "$(hostname)" = ${NAME} ] && [ "$(id -u)" = 0 ]`];
        const report = await runHealthChecks(root, checks({ commands: [{ command }] }), options());
        expect(report.healthy, formatHealthFailures(report)).toBe(true);
        expect(report.results[0]).toMatchObject({ kind: "command", healthy: true, attempts: 1, detail: "exit 0" });

        // A non-root login user gets root through sudo -n.
        const viaSudo = await runHealthChecks(deployer, checks({ commands: [{ command: ["sh", "-c", '[ "$(id -u)" = 0 ]'] }] }), options());
        expect(viaSudo.healthy, formatHealthFailures(viaSudo)).toBe(true);
    });

    it("a failing command check is retried and reports its output", async () => {
        const command = ["sh", "-c", "echo 'checking db on port 5432'; echo 'db: connection refused' >&2; exit 3"];
        const report = await runHealthChecks(root, checks({ commands: [{ command, retries: 1 }] }), options());
        expect(report.healthy).toBe(false);
        expect(report.results[0]).toMatchObject({ kind: "command", healthy: false, attempts: 2 });
        expect(report.results[0]!.detail).toBe("exited with 3\nchecking db on port 5432\ndb: connection refused");
        expect(formatHealthFailures(report)).toContain("    db: connection refused");
    });

    it("a hanging command is cut off after its timeout", async () => {
        const started = Date.now();
        const report = await runHealthChecks(root, checks({ commands: [{ command: ["sleep", "30"], timeout: 1, retries: 0 }] }), options());
        expect(Date.now() - started).toBeLessThan(5000); // ended on the host, not after the 30 s sleep
        expect(report.results[0]).toMatchObject({ healthy: false, attempts: 1, detail: "timed out after 1 second" });
        // The master survives a killed client: the next check still runs.
        const next = await runHealthChecks(root, checks({ commands: [{ command: ["true"] }] }), options());
        expect(next.healthy).toBe(true);
    });

    it("tcp checks connect from the deployer: a listening port passes, a closed one fails", async () => {
        const report = await runHealthChecks(root, checks({ tcp: [{ port: serverPort }, { port: closedPort, host: "127.0.0.1", retries: 1 }] }), options());
        expect(report.results).toEqual([
            { kind: "tcp", name: `tcp 127.0.0.1:${serverPort}`, healthy: true, attempts: 1, detail: "connected" },
            { kind: "tcp", name: `tcp 127.0.0.1:${closedPort}`, healthy: false, attempts: 2, detail: "connection refused (nothing listens on the port)" },
        ]);
    });

    it("http checks: 2xx passes, another status fails with the status and the body", async () => {
        const base = `http://127.0.0.1:${serverPort}`;
        const report = await runHealthChecks(root, checks({ http: [{ url: `${base}/healthz` }, { url: `${base}/api`, retries: 0 }] }), options());
        expect(report.results).toEqual([
            { kind: "http", name: `http ${base}/healthz`, healthy: true, attempts: 1, detail: "HTTP 200" },
            { kind: "http", name: `http ${base}/api`, healthy: false, attempts: 1, detail: "HTTP 503 Service Unavailable (expected any 2xx)\nmaintenance: back soon" },
        ]);
    });

    it("unit checks ask the host's real systemd: an active unit passes, a missing one fails with its status", async () => {
        const report = await runHealthChecks(root, checks({ units: ["ssh", "nginx"] }), options());
        expect(report.results[0]).toMatchObject({ kind: "unit", name: "unit ssh.service", healthy: true, detail: "active" });
        expect(report.results[1]).toMatchObject({ kind: "unit", name: "unit nginx.service", healthy: false, attempts: 4 });
        expect(report.results[1]!.detail).toMatch(/^nginx\.service is not active \(systemctl is-active exited with \d+\)\n.*nginx\.service could not be found/s);
    });

    it("a unit check on a host without systemctl fails at once and says systemctl is missing", async () => {
        // Hide systemctl inside the host's own mount namespace (the machine keeps its own).
        const hidden = await fleet.console(NAME, ["sh", "-c", ": > /run/no-systemctl && mount --bind /run/no-systemctl /usr/bin/systemctl"]);
        expect(hidden.code, hidden.stderr).toBe(0);
        try {
            const report = await runHealthChecks(root, checks({ units: ["nginx", "sshd.socket"] }), options());
            expect(report.healthy).toBe(false);
            for (const result of report.results) {
                expect(result).toMatchObject({ kind: "unit", healthy: false, attempts: 1 });
                expect(result.detail).toMatch(/^systemctl is missing on the host \(not a systemd system\?\): units cannot be checked/);
            }
            expect(report.results.map((result) => result.name)).toEqual(["unit nginx.service", "unit sshd.socket"]);
        } finally {
            await fleet.console(NAME, ["umount", "/usr/bin/systemctl"]);
        }
        expect(fs.statSync("/usr/bin/systemctl").size).toBeGreaterThan(0);
    });

    it("all checks run together and every failure is in the report", async () => {
        const report = await runHealthChecks(
            root,
            checks({
                commands: [{ command: ["true"] }, { command: ["false"], retries: 0 }],
                units: ["nginx"],
                tcp: [{ port: closedPort, retries: 0 }],
                http: [{ url: `http://127.0.0.1:${serverPort}/healthz` }],
            }),
            options(),
        );
        expect(report.healthy).toBe(false);
        expect(report.results.filter((result) => !result.healthy).map((result) => result.name)).toEqual([
            "command false",
            "unit nginx.service",
            `tcp 127.0.0.1:${closedPort}`,
        ]);
        const text = formatHealthFailures(report);
        expect(text).toContain("✗ command false (1 attempt)\n    exited with 1");
        expect(text).toContain("✗ unit nginx.service (4 attempts)\n    nginx.service is not active");
        expect(text).toContain(`✗ tcp 127.0.0.1:${closedPort} (1 attempt)\n    connection refused`);
        expect(lines.some((line) => line.startsWith("health: command false: FAILED after 1 attempt"))).toBe(true);
    });
});
