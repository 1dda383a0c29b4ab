import { describe, expect, it } from "vitest";
import { execCommand, execExitCode, parseExecArgs, renderExecSummary, runExec, type ExecHostResult } from "../../../src/cli/exec";
import { LinePrefixer } from "../../../src/cli/prefixLines";
import { hostFileSchema, resolveHost, type HostConfig } from "../../../src/config";
import { mapLimit } from "../../../src/process/pool";
import { FakeRunner, masterExit, masterStart, sshOption, type RecordedCall } from "../helpers/fakeRunner";
import { runtimeDir } from "../helpers/fixtures";

function host(name: string, fields: Record<string, unknown> = {}): HostConfig {
    const declared = hostFileSchema.parse({ address: `${name}.lab.example.org`, flake: "/srv/infra", ...fields });
    return resolveHost(declared, { name, file: `/srv/fleet/hosts/${name}.yaml`, baseDir: "/srv/fleet" });
}

const destinationOf = (call: RecordedCall): string => call.argv[call.argv.length - (call.remote === undefined ? 1 : 2)]!;
const hostOf = (call: RecordedCall): string => /^root@([a-z]+)\./.exec(destinationOf(call))![1]!;

describe("parseExecArgs", () => {
    it("options before --, the command after it, each word kept as given", () => {
        expect(parseExecArgs(["--hosts", "@web", "--parallel", "2", "--", "sh", "-c", "echo $HOME; true"])).toEqual({
            hosts: "@web",
            stack: undefined,
            parallel: 2,
            timeoutSeconds: undefined,
            help: false,
            command: ["sh", "-c", "echo $HOME; true"],
        });
        // options after -- belong to the command
        expect(parseExecArgs(["--", "ls", "--hosts", "-l"]).command).toEqual(["ls", "--hosts", "-l"]);
        expect(parseExecArgs(["--timeout", "5", "--stack", "prod", "--", "uptime"])).toMatchObject({ timeoutSeconds: 5, stack: "prod" });
        expect(parseExecArgs(["--help"]).help).toBe(true);
    });

    it("a missing or empty command, unknown options and bad numbers are usage errors", () => {
        expect(() => parseExecArgs(["--hosts", "psi"])).toThrow(/no command given: put it after --/);
        expect(() => parseExecArgs(["--hosts", "psi", "--"])).toThrow(/the command after -- is empty/);
        expect(() => parseExecArgs(["--", ""])).toThrow(/command's name is empty/);
        expect(() => parseExecArgs(["--host", "psi", "--", "true"])).toThrow(/Unknown option '--host'/);
        expect(() => parseExecArgs(["uptime"])).toThrow(/Unexpected argument|no command/);
        expect(() => parseExecArgs(["--parallel", "0", "--", "true"])).toThrow(/--parallel must be a whole number of at least 1, not "0"/);
        expect(() => parseExecArgs(["--timeout", "1.5", "--", "true"])).toThrow(/--timeout must be a whole number/);
        expect(() => parseExecArgs(["--hosts", "a", "--hosts", "b", "--", "true"])).toThrow(/--hosts is given more than once/);
    });

    it("the command exits 2 on a usage error, 0 with --help, before opening any stack", async () => {
        const written: string[] = [];
        const original = { out: process.stdout.write, err: process.stderr.write };
        process.stdout.write = ((chunk: string) => (written.push(chunk), true)) as typeof process.stdout.write;
        process.stderr.write = ((chunk: string) => (written.push(chunk), true)) as typeof process.stderr.write;
        try {
            expect(await execCommand(["--hosts", "psi"])).toBe(2);
            expect(written.join("")).toMatch(/no command given[\s\S]*usage: npm run exec/);
            written.length = 0;
            expect(await execCommand(["-h"])).toBe(0);
            expect(written.join("")).toMatch(/--parallel N[\s\S]*exit status: 0 when/);
        } finally {
            process.stdout.write = original.out;
            process.stderr.write = original.err;
        }
    });
});

describe("LinePrefixer", () => {
    it("writes only whole lines, each with the prefix; a partial line waits for its end or the flush", () => {
        const written: string[] = [];
        const lines = new LinePrefixer("[psi] ", (text) => written.push(text));
        lines.push("hel");
        expect(written).toEqual([]);
        lines.push("lo\nwor");
        expect(written).toEqual(["[psi] hello\n"]);
        lines.push("ld\r\n\nlast");
        expect(written).toEqual(["[psi] hello\n", "[psi] world\n[psi] \n"]);
        lines.flush();
        lines.flush();
        expect(written.join("")).toBe("[psi] hello\n[psi] world\n[psi] \n[psi] last\n");
    });
});

describe("mapLimit", () => {
    it("keeps at most N under way and returns results in order", async () => {
        let running = 0;
        let most = 0;
        const results = await mapLimit([30, 10, 20, 5, 1], 2, async (ms, i) => {
            running += 1;
            most = Math.max(most, running);
            await new Promise((resolve) => setTimeout(resolve, ms));
            running -= 1;
            return i;
        });
        expect(results).toEqual([0, 1, 2, 3, 4]);
        expect(most).toBe(2);
        expect(await mapLimit([], 3, async () => 1)).toEqual([]);
    });
});

describe("runExec", () => {
    function fleetRunner() {
        return new FakeRunner()
            .on(masterStart, (call) =>
                hostOf(call) === "tau" ? { code: 255, stderr: "ssh: connect to host tau.lab.example.org port 22: Connection refused\n" } : {},
            )
            .on(
                (call) => call.remoteCommand !== undefined,
                (call) => {
                    const name = hostOf(call);
                    // output arrives in chunks that split lines, interleaved between streams
                    call.options.onStdout?.(`${name} line 1\n${name} li`);
                    call.options.onStderr?.(`${name} warn`);
                    call.options.onStdout?.("ne 2\nno newline");
                    return { code: name === "rho" ? 3 : 0 };
                },
            );
    }

    it("runs the argv, quoted word by word, over each host's master; prefixes every line; reports each host", async () => {
        const runner = fleetRunner();
        const out: string[] = [];
        const err: string[] = [];
        const command = ["sh", "-c", "echo 'it''s' $HOME; rm -rf /tmp/x*", "a b"];
        const results = await runExec({
            targets: [host("psi"), host("rho"), host("tau")].map((h) => ({ host: h })),
            command,
            runner: runner.run,
            runtimeDir: runtimeDir(),
            stdout: (text) => out.push(text),
            stderr: (text) => err.push(text),
        });
        expect(results).toEqual([
            { host: "psi", status: "ok", code: 0 },
            { host: "rho", status: "failed", code: 3, reason: "exit status 3" },
            expect.objectContaining({ host: "tau", status: "unreachable", code: null }),
        ]);
        expect(results[2]!.reason).toMatch(/host tau: connect failed/);
        // the remote shell sees exactly the words given, never one concatenated line
        const remote = runner.matching((call) => call.remoteCommand !== undefined);
        expect(remote).toHaveLength(2);
        for (const call of remote) {
            expect(call.remoteArgv).toEqual(command);
            expect(call.viaSudo).toBe(false);
            expect(sshOption(call.argv, "ControlMaster")).toBe("no");
            expect(sshOption(call.argv, "StrictHostKeyChecking")).toBe("yes");
            expect(call.argv).toContain("-n");
        }
        expect(out.join("")).toContain("[psi] psi line 1\n[psi] psi line 2\n");
        expect(out.join("")).toContain("[psi] no newline\n");
        expect(err.join("")).toContain("[rho] rho warn\n");
        expect(out.join("") + err.join("")).not.toMatch(/tau/);
        // every master that opened is closed again
        expect(runner.matching(masterExit).map(hostOf).sort()).toEqual(["psi", "rho"]);
    });

    it("--parallel bounds the hosts under way; a timeout and a lost connection are failures saying so", async () => {
        let running = 0;
        let most = 0;
        const runner = new FakeRunner().on(
            (call) => call.remoteCommand !== undefined,
            async (call) => {
                running += 1;
                most = Math.max(most, running);
                await new Promise((resolve) => setTimeout(resolve, 10));
                running -= 1;
                if (hostOf(call) === "sigma") return { code: 124 };
                if (hostOf(call) === "kappa") return { code: null, timedOut: true, signal: "SIGKILL" };
                if (hostOf(call) === "omega") return { code: 255, stderr: "Connection closed by 127.0.0.1 port 22\n" };
                return {};
            },
        );
        const results = await runExec({
            targets: ["alpha", "beta", "gamma", "sigma", "omega", "kappa"].map((name) => ({ host: host(name) })),
            command: ["sleep", "100"],
            parallel: 2,
            timeoutSeconds: 7,
            runner: runner.run,
            runtimeDir: runtimeDir(),
            stdout: () => undefined,
            stderr: () => undefined,
        });
        expect(most).toBe(2);
        // Killing the local ssh would leave the command running on the host: the host's `timeout`
        // stops it there; the local limit is a backstop for a connection that does not close.
        for (const call of runner.matching((c) => c.remoteCommand !== undefined)) {
            expect(call.remoteCommand).toEqual(["timeout", "--kill-after=5", "7", "sleep", "100"]);
            expect(call.options.timeoutMs).toBe(22_000);
        }
        expect(results.map((r) => r.status)).toEqual(["ok", "ok", "ok", "failed", "unreachable", "failed"]);
        expect(results[3]!.reason).toBe("stopped on the host after 7s (--timeout; exit status 124)");
        expect(results[4]!.reason).toMatch(/whether it ran to the end is unknown/);
        expect(results[5]!.reason).toMatch(/did not end within 7s \(--timeout\) .*whether it still runs on the host is unknown/);
    });
});

describe("renderExecSummary and the exit status", () => {
    const results: ExecHostResult[] = [
        { host: "psi", status: "ok", code: 0 },
        { host: "rho", status: "failed", code: 3, reason: "exit status 3" },
        { host: "sigma", status: "failed", code: null, reason: "stopped after 7s (--timeout)" },
        { host: "tau", status: "unreachable", code: null, reason: "host tau: connect failed: connection refused\n  hint: is sshd running?" },
    ];

    it("a line per host, the tally, then the failed and unreachable hosts by name", () => {
        expect(renderExecSummary(results)).toBe(
            [
                "psi    ok (exit status 0)",
                "rho    failed: exit status 3",
                "sigma  failed: stopped after 7s (--timeout)",
                "tau    unreachable: host tau: connect failed: connection refused",
                "         hint: is sshd running?",
                "",
                "exec: 1 of 4 hosts ok",
                "failed on: rho (exit status 3), sigma (stopped after 7s (--timeout))",
                "unreachable: tau",
            ].join("\n"),
        );
        expect(execExitCode(results)).toBe(1);
        expect(execExitCode([results[0]!])).toBe(0);
        expect(execExitCode([results[3]!])).toBe(1);
        expect(renderExecSummary([results[0]!])).toBe("psi   ok (exit status 0)\n\nexec: 1 of 1 host ok");
    });
});

describe("a --hosts that selects nothing", () => {
    it("is a usage error (exit status 2 in exec and build), not 'failed on some host' (1)", async () => {
        const { hostsOrUsageError } = await import("../../../src/cli/hostsOption");
        const stack = [host("psi", { tags: ["web"] }), host("rho")];
        for (const value of ["", ",", "@nosuch", "pis"]) {
            const said: string[] = [];
            expect(hostsOrUsageError(stack, value, (text) => said.push(text))).toBeUndefined();
            expect(said.join("")).toMatch(/^error: select failed: cannot select hosts/);
        }
        expect(hostsOrUsageError(stack, "@web", () => undefined)?.map((h) => h.name)).toEqual(["psi"]);
        expect(hostsOrUsageError(stack, undefined, () => undefined)?.map((h) => h.name)).toEqual(["psi", "rho"]);
    });
});
