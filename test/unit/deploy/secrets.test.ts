// Secret files in a deploy: written over the master with the value on stdin (never in argv), before
// or after activation as each says; removed ones deleted; the real scripts run under sh here too.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { deployHost, type DeployContext, type DeployRequest } from "../../../src/deploy/deployHost";
import {
    SECRET_CHECK_SCRIPT,
    SECRET_PUT_SCRIPT,
    SECRET_REMOVE_SCRIPT,
    secretPutArgv,
    secretRemoveArgv,
    type NamedSecretFile,
} from "../../../src/deploy/secrets";
import { formatFleetError, type FleetError } from "../../../src/errors";
import type { ClosurePath } from "../../../src/nix/closure";
import { FakeHost, attachLocalNix } from "../helpers/fakeHost";
import { FakeRunner, remote, type RecordedCall } from "../helpers/fakeRunner";
import { drvPath, runtimeDir, storePath, target } from "../helpers/fixtures";

const v1 = storePath("nixos-system-alpha-1");
const v2 = storePath("nixos-system-alpha-2");
const next = storePath("nixos-system-alpha-3");
const closures = new Map<string, ClosurePath[]>([[next, [{ path: next, narSize: 4_000 }]]]);

const dbpass: NamedSecretFile = { name: "dbpass", path: "/run/keys/dbpass", owner: "postgres", group: "root", mode: "0400", uploadAt: "pre-activation", value: "hunter2-db" };
const token: NamedSecretFile = { name: "token", path: "/var/lib/app/token", owner: "app", group: "app", mode: "0440", uploadAt: "post-activation", value: "tok-3141" };

function request(overrides: Partial<DeployRequest> = {}): DeployRequest {
    return {
        target: target({ user: "root" }),
        storePath: next,
        drvPath: drvPath("nixos-system-alpha-3"),
        flake: "/srv/infra",
        attribute: "nixosConfigurations.alpha",
        buildOn: "local",
        action: "test",
        substituteOnDestination: false,
        ...overrides,
    };
}

function setup(host = FakeHost.withGenerations(v1, v2)) {
    const runner = new FakeRunner();
    host.attach(runner);
    attachLocalNix(runner, host, closures);
    const written = new Map<string, string>();
    const removed: string[] = [];
    runner.on(remote("sh", "-c", SECRET_PUT_SCRIPT), (call) => {
        written.set(call.remoteCommand![4]!, call.options.input ?? "");
        return {};
    });
    runner.on(remote("sh", "-c", SECRET_REMOVE_SCRIPT), (call) => {
        removed.push(...call.remoteCommand!.slice(4));
        return {};
    });
    const log: string[] = [];
    const context: DeployContext = { runner: runner.run, runtimeDir: runtimeDir(), log: (line) => log.push(line), sleep: async () => undefined };
    return { host, runner, context, written, removed, log };
}

/** What each call was, in order: secret writes by path, the activation, other remote commands. */
function order(calls: readonly RecordedCall[]): string[] {
    return calls.flatMap((call) => {
        const words = call.remoteCommand;
        if (!words) return [];
        if (words[2] === SECRET_PUT_SCRIPT) return [`put ${words[4]}`];
        if (words[2] === SECRET_REMOVE_SCRIPT) return [`rm ${words.slice(4).join(" ")}`];
        if (words[0] === "sh" && words[3] === "nixos-fleet-activate") return ["activate"];
        return [];
    });
}

describe("secret files in a deploy", () => {
    it("writes pre-activation secrets before the activation and post-activation ones after it, values on stdin only", async () => {
        const { runner, context, written, log } = setup();
        const outcome = await deployHost(request({ secrets: [dbpass, token] }), context);
        expect(outcome.activated).toBe(true);
        expect(order(runner.calls)).toEqual(["put /run/keys/dbpass", "activate", "put /var/lib/app/token"]);
        expect(written.get("/run/keys/dbpass")).toBe("hunter2-db");
        expect(written.get("/var/lib/app/token")).toBe("tok-3141");
        // The values are in no argv and no log line.
        for (const call of runner.calls) expect(call.argv.join(" ")).not.toMatch(/hunter2-db|tok-3141/);
        expect(log.join("\n")).not.toMatch(/hunter2-db|tok-3141/);
        expect(log).toContain("secret dbpass written to /run/keys/dbpass (0400 postgres:root)");
        expect(outcome.timings.secrets).toBeGreaterThanOrEqual(0);
    });

    it("writes and deletes secrets on a host that already runs the system, and deletes removed ones after a deploy", async () => {
        const host = FakeHost.withGenerations(v1, next);
        const { runner, context, removed } = setup(host);
        const outcome = await deployHost(request({ secrets: [dbpass, token], removedSecrets: [{ name: "old", path: "/run/keys/old" }] }), context);
        expect(outcome.activated).toBe(false);
        expect(order(runner.calls)).toEqual(["put /run/keys/dbpass", "put /var/lib/app/token", "rm /run/keys/old"]);
        expect(removed).toEqual(["/run/keys/old"]);
    });

    it("writes and deletes nothing for dry-activate", async () => {
        const { runner, context, log } = setup();
        await deployHost(request({ action: "dry-activate", secrets: [dbpass], removedSecrets: [{ name: "old", path: "/run/keys/old" }] }), context);
        expect(order(runner.calls).filter((step) => step !== "activate")).toEqual([]);
        expect(log).toContain("dry-activate: secret files are not written or deleted");
    });

    it("names the secret (never its value) when a write fails, before anything is activated", async () => {
        const { runner, context } = setup();
        runner.on(remote("sh", "-c", SECRET_PUT_SCRIPT), { code: 1, stderr: "chown: invalid user: 'postgres:root'" });
        const error = (await deployHost(request({ secrets: [dbpass] }), context).catch((e: unknown) => e)) as FleetError;
        const text = formatFleetError(error);
        expect(text).toMatch(/host alpha: secrets failed: could not write secret dbpass to \/run\/keys\/dbpass \(pre-activation\)/);
        expect(text).toMatch(/uploadAt: post-activation/);
        expect(text).not.toMatch(/hunter2-db/);
        expect(order(runner.calls)).not.toContain("activate");
    });

    it("refuses unsafe paths, accounts and modes at the edge where they reach a remote command", () => {
        expect(() => secretPutArgv({ ...dbpass, path: "/run/keys/../../etc/shadow" })).toThrow(/'\.\.'/);
        expect(() => secretPutArgv({ ...dbpass, path: "relative/key" })).toThrow(/absolute/);
        expect(() => secretPutArgv({ ...dbpass, path: "/run/keys/a\nb" })).toThrow(/newlines/);
        expect(() => secretPutArgv({ ...dbpass, owner: "root;rm" })).toThrow(/not a user or group name/);
        expect(() => secretPutArgv({ ...dbpass, mode: "4755" })).toThrow(/octal mode/);
        expect(() => secretRemoveArgv(["/nix/store/x"])).toThrow(/\/nix/);
        expect(secretPutArgv(dbpass)).toEqual(["sh", "-c", SECRET_PUT_SCRIPT, "nixos-fleet-secret-put", "/run/keys/dbpass", "postgres", "root", "0400"]);
    });
});

describe("the secret scripts under sh", () => {
    const user = os.userInfo().username;
    const group = spawnSync("id", ["-gn"], { encoding: "utf8" }).stdout.trim();

    function sh(script: string, args: string[], input = ""): { status: number | null; stdout: string; stderr: string } {
        const result = spawnSync("sh", ["-c", script, "nixos-fleet-test", ...args], { input, encoding: "utf8" });
        return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    }

    it("writes the content with the mode and owner, creating the directory, leaving no temporary file", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nf-secret-"));
        try {
            const file = path.join(dir, "keys", "dbpass");
            const put = sh(SECRET_PUT_SCRIPT, [file, user, group, "0400"], "s3cret\nline two");
            expect(put.status, put.stderr).toBe(0);
            expect(fs.readFileSync(file, "utf8")).toBe("s3cret\nline two");
            expect(fs.statSync(file).mode & 0o7777).toBe(0o400);
            expect(fs.statSync(path.join(dir, "keys")).mode & 0o777).toBe(0o711);
            // Written again: replaced whole, still 0400, no temporary file left beside it.
            expect(sh(SECRET_PUT_SCRIPT, [file, user, group, "0440"], "new").status).toBe(0);
            expect(fs.readFileSync(file, "utf8")).toBe("new");
            expect(fs.statSync(file).mode & 0o7777).toBe(0o440);
            expect(fs.readdirSync(path.join(dir, "keys"))).toEqual(["dbpass"]);

            const check = sh(SECRET_CHECK_SCRIPT, [file, path.join(dir, "keys", "gone")]);
            expect(check.stdout).toBe(`${path.join(dir, "keys", "gone")}\n`);
            expect(sh(SECRET_REMOVE_SCRIPT, [file, path.join(dir, "keys", "gone")]).status).toBe(0);
            expect(fs.existsSync(file)).toBe(false);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("refuses a path that is a directory, leaving it untouched", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nf-secret-"));
        try {
            fs.mkdirSync(path.join(dir, "conf"));
            const put = sh(SECRET_PUT_SCRIPT, [path.join(dir, "conf"), user, group, "0400"], "s3cret");
            expect(put.status).not.toBe(0);
            expect(put.stderr).toMatch(/is a directory/);
            expect(fs.readdirSync(path.join(dir, "conf"))).toEqual([]);
            expect(fs.readdirSync(dir)).toEqual(["conf"]);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("fails for an unknown owner and leaves neither the file nor a temporary one", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nf-secret-"));
        try {
            const file = path.join(dir, "dbpass");
            const put = sh(SECRET_PUT_SCRIPT, [file, "no-such-user-nf", group, "0400"], "s3cret");
            expect(put.status).not.toBe(0);
            expect(fs.readdirSync(dir)).toEqual([]);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("refuses a directory on the way that another user can change, so a planted symlink cannot redirect the file", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nf-secret-"));
        try {
            const elsewhere = path.join(dir, "elsewhere");
            fs.mkdirSync(elsewhere);
            // A directory anyone can write (not sticky): its owner-to-be could swap in a symlink.
            const open = path.join(dir, "open");
            fs.mkdirSync(open);
            fs.chmodSync(open, 0o777);
            fs.symlinkSync(elsewhere, path.join(open, "link"));
            const put = sh(SECRET_PUT_SCRIPT, [path.join(open, "link", "dbpass"), user, group, "0400"], "s3cret");
            expect(put.status).not.toBe(0);
            expect(put.stderr).toMatch(/open is writable by group or others/);
            expect(fs.readdirSync(elsewhere)).toEqual([]);
            fs.writeFileSync(path.join(elsewhere, "keep"), "x");
            expect(sh(SECRET_REMOVE_SCRIPT, [path.join(open, "link", "keep")]).status).not.toBe(0);
            expect(fs.readdirSync(elsewhere)).toEqual(["keep"]);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it.runIf(process.getuid?.() === 0)("as root, refuses a service user's own directory holding the user's symlink to /etc-like places", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nf-secret-"));
        try {
            const etc = path.join(dir, "etc");
            fs.mkdirSync(etc);
            const service = path.join(dir, "service");
            fs.mkdirSync(service);
            fs.chownSync(service, 65534, 65534); // nobody: the service account that owns its state directory
            fs.symlinkSync(etc, path.join(service, "conf"));
            fs.lchownSync(path.join(service, "conf"), 65534, 65534);
            const put = sh(SECRET_PUT_SCRIPT, [path.join(service, "conf", "dbpass"), "root", "root", "0400"], "s3cret");
            expect(put.status).not.toBe(0);
            expect(put.stderr).toMatch(/service belongs to uid 65534/);
            expect(fs.readdirSync(etc)).toEqual([]);
            // A root-owned directory in a sticky one (like /run/keys under /tmp) is fine.
            const sticky = path.join(dir, "sticky");
            fs.mkdirSync(sticky);
            fs.chmodSync(sticky, 0o1777);
            expect(sh(SECRET_PUT_SCRIPT, [path.join(sticky, "keys", "dbpass"), "root", "root", "0400"], "s3cret").status).toBe(0);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
