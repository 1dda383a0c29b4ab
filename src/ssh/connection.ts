// One SSH master connection per host (OpenSSH ControlMaster): every command and every `nix copy`
// to the host reuses it, so a deploy costs one SSH handshake per host instead of one per step.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FleetError } from "../errors";
import type { ProcessRunner, RunResult } from "../process/runner";
import { sshError } from "./diagnose";
import { configValue, jumpSshConfig, lastHop } from "./jumpHosts";
import { sshConfigRefusals, sshOptionRefusal } from "./optionPolicy";
import { remoteCommand } from "./quote";
import { destination, hostKeyAlias, namesFiles, type SshTarget } from "./target";

export interface SshConnectionOptions {
    runner: ProcessRunner;
    /** A private directory for the control socket and the pinned known_hosts file. Keep it short: socket paths are limited to ~100 bytes. */
    runtimeDir: string;
    /** Seconds the master outlives its last use, so a crashed deployer leaves nothing behind for long. */
    persistSeconds?: number;
}

export interface RemoteRunOptions {
    /** Run through `sudo -n` when the login user is not root. */
    asRoot?: boolean;
    input?: string;
    timeoutMs?: number;
    onStdout?: (chunk: string) => void;
    onStderr?: (chunk: string) => void;
    /** How stdout is decoded (RunOptions.stdoutEncoding). */
    stdoutEncoding?: "utf8" | "latin1";
}

const WHITESPACE = /\s/;

/** Options that NIX_SSHOPTS will carry must not contain whitespace: Nix splits it without quoting. */
function assertNoWhitespace(target: SshTarget, options: string[]): void {
    const bad = options.find((option) => WHITESPACE.test(option));
    if (bad !== undefined) {
        throw new FleetError({
            phase: "connect",
            host: target.name,
            message: `the ssh option "${bad}" contains whitespace, which Nix's NIX_SSHOPTS cannot carry`,
            hint: "move the file to a path without spaces",
        });
    }
}

/** A pinned key is one known_hosts line: a key with a line break could add a second, wildcard entry. */
function singleLineKey(target: SshTarget): string {
    const key = (target.hostKey ?? "").trim();
    if (/[\r\n\u0000]/.test(key)) {
        throw new FleetError({ phase: "connect", host: target.name, message: "the pinned hostKey spans more than one line", hint: 'hostKey is one "<type> <base64>" line' });
    }
    return key;
}

/** The host's name becomes file names in the runtime directory: nothing that could leave it. */
function assertSafeName(target: SshTarget): void {
    if (!namesFiles(target.name)) {
        throw new FleetError({ phase: "connect", host: target.name, message: `host name ${JSON.stringify(target.name)} cannot name files`, hint: "host names are lowercase DNS labels (docs/host-config.md)" });
    }
}

/** An sshConfigFile is reviewed like a host file: it may not run commands (sshConfigRefusals). */
function assertHarmlessConfigFile(target: SshTarget): void {
    if (!target.sshConfigFile) return;
    let text: string;
    try {
        text = readFileSync(target.sshConfigFile, "utf8");
    } catch {
        return; // ssh reports a missing file itself
    }
    const [first, ...rest] = sshConfigRefusals(text);
    if (first) {
        throw new FleetError({
            phase: "connect",
            host: target.name,
            message: `${first.message}: not allowed in sshConfigFile${rest.length ? ` (and ${rest.length} more)` : ""}`,
            file: target.sshConfigFile,
            line: first.line,
            hint: first.hint,
        });
    }
}

/** The host's own ssh options pass the allow-list here too, wherever they came from (old state, another program). */
function assertAllowedOptions(target: SshTarget): void {
    for (const option of target.sshOptions ?? []) {
        const refusal = sshOptionRefusal(option);
        if (refusal) {
            throw new FleetError({ phase: "connect", host: target.name, message: `ssh option ${JSON.stringify(option)} ${refusal.message}`, hint: refusal.hint });
        }
    }
}

/**
 * The ssh client options for a target, apart from the control socket. A target with jump hosts
 * needs the ssh_config jumpSshConfig wrote for it (`jumpConfigFile`): -J alone would leave the hops
 * unchecked.
 */
export function targetSshOptions(target: SshTarget, pinnedKnownHosts?: string, jumpConfigFile?: string): string[] {
    // ssh keeps the first value it sees for an option: the host's own options go first, so they
    // win over our defaults below.
    const options: string[] = [];
    for (const option of target.sshOptions ?? []) options.push("-o", option);
    if (target.proxyJump) {
        if (!jumpConfigFile) throw new Error(`targetSshOptions: ${target.name} has jump hosts but no generated ssh_config`);
        // The generated file includes the host's sshConfigFile (or the user's ssh_config).
        options.push("-F", jumpConfigFile, "-J", lastHop(target)!);
    } else if (target.sshConfigFile) {
        options.push("-F", target.sshConfigFile);
    }
    if (target.port !== undefined) options.push("-p", String(target.port));
    if (target.identityFile) options.push("-i", target.identityFile, "-o", "IdentitiesOnly=yes");
    options.push(
        "-o", "BatchMode=yes",
        "-o", `ConnectTimeout=${target.connectTimeout ?? 10}`,
        "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=3",
    );
    if (target.insecureSkipHostKeyCheck) {
        options.push("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null");
    } else {
        options.push("-o", "StrictHostKeyChecking=yes");
        if (pinnedKnownHosts) {
            options.push("-o", `UserKnownHostsFile=${pinnedKnownHosts}`, "-o", `HostKeyAlias=${hostKeyAlias(target)}`);
        } else if (target.knownHostsFile) {
            options.push("-o", `UserKnownHostsFile=${target.knownHostsFile}`);
        }
    }
    return options;
}

export class SshConnection {
    readonly target: SshTarget;
    readonly controlPath: string;
    /** How many SSH handshakes this connection made (benchmarks report it). */
    handshakes = 0;
    private readonly runner: ProcessRunner;
    private readonly options: string[];
    private readonly persistSeconds: number;
    /** The pinned known_hosts file (a hostKey is set), for storeAliasBlock. */
    private readonly pinnedKnownHosts?: string;
    private opened = false;
    /** When the master started (Date.now()), for reopenIfEnded. */
    private openedAt = 0;
    /** The master's start while it runs (open()), and what stops it (close()). */
    private opening?: Promise<void>;
    private stopOpening?: AbortController;

    constructor(target: SshTarget, options: SshConnectionOptions) {
        this.target = target;
        this.runner = options.runner;
        assertSafeName(target);
        assertAllowedOptions(target);
        assertHarmlessConfigFile(target);
        this.persistSeconds = options.persistSeconds ?? 60;
        mkdirSync(options.runtimeDir, { recursive: true, mode: 0o700 });
        this.controlPath = join(options.runtimeDir, `${target.name}.sock`);
        let pinned: string | undefined;
        if (target.hostKey && !target.insecureSkipHostKeyCheck) {
            pinned = join(options.runtimeDir, `${target.name}.known_hosts`);
            writeFileSync(pinned, `${hostKeyAlias(target)} ${singleLineKey(target)}\n`, { mode: 0o600 });
        }
        let jumpConfig: string | undefined;
        if (target.proxyJump) {
            jumpConfig = join(options.runtimeDir, `${target.name}.ssh_config`);
            writeFileSync(jumpConfig, jumpSshConfig(target), { mode: 0o600 });
        }
        this.pinnedKnownHosts = pinned;
        this.options = [...targetSshOptions(target, pinned, jumpConfig), "-o", `ControlPath=${this.controlPath}`];
        assertNoWhitespace(target, this.options);
    }

    /** Options for ssh clients that should ride on the master (ours and Nix's). */
    clientOptions(): string[] {
        return [...this.options, "-o", "ControlMaster=no"];
    }

    /** NIX_SSHOPTS for `nix copy`: Nix's ssh then multiplexes over our master. */
    nixSshOpts(): string {
        return this.clientOptions().join(" ");
    }

    /** The Nix store URI of the host (ssh-ng: the daemon protocol, as colmena and deploy-rs use). */
    storeUri(): string {
        return `ssh-ng://${destination(this.target)}`;
    }

    /**
     * An ssh_config Host block naming this host `alias`, riding on this connection's master, for
     * the one Nix command that talks to two hosts at once (`nix copy --from A --to B`): NIX_SSHOPTS
     * is one set of options for both, so the per-host ones go into a generated ssh_config instead
     * (nix/buildHost.ts). Should the master be gone, ssh would connect anew with the host's address,
     * port, user, key and the same strict host-key check (it may then not find its way through jump
     * hosts or an ssh_config alias, and fails rather than connect unchecked).
     */
    storeAliasBlock(alias: string): string {
        const target = this.target;
        const value = (text: string) => configValue(target, text);
        const lines = [`Host ${alias}`, `    HostName ${value(target.address)}`, `    User ${value(target.user)}`];
        if (target.port !== undefined) lines.push(`    Port ${target.port}`);
        lines.push(`    ControlPath ${value(this.controlPath)}`, "    ControlMaster no", "    BatchMode yes", `    ConnectTimeout ${target.connectTimeout ?? 10}`);
        if (target.identityFile) lines.push(`    IdentityFile ${value(target.identityFile)}`, "    IdentitiesOnly yes");
        if (target.insecureSkipHostKeyCheck) {
            lines.push("    StrictHostKeyChecking no", "    UserKnownHostsFile /dev/null");
        } else {
            lines.push("    StrictHostKeyChecking yes");
            if (this.pinnedKnownHosts) lines.push(`    UserKnownHostsFile ${value(this.pinnedKnownHosts)}`, `    HostKeyAlias ${hostKeyAlias(target)}`);
            else if (target.knownHostsFile) lines.push(`    UserKnownHostsFile ${value(target.knownHostsFile)}`);
        }
        return `${lines.join("\n")}\n`;
    }

    /**
     * Starts the master connection (one SSH handshake). Throws a FleetError saying why not.
     * `timeoutMs` shortens the attempt (a wait with a deadline of its own, e.g. a reboot's).
     * Concurrent callers share one start; a failed start is not remembered: the next call tries again.
     */
    open(options: { timeoutMs?: number } = {}): Promise<void> {
        if (this.opened) return Promise.resolve();
        if (!this.opening) {
            const stop = new AbortController();
            this.stopOpening = stop;
            this.opening = this.startMaster(options, stop.signal).finally(() => {
                this.opening = undefined;
                this.stopOpening = undefined;
            });
        }
        return this.opening;
    }

    /**
     * A master started a while ago and unused since may have ended on its own (one opened before a
     * long build): ControlPersist ends an unused master after persistSeconds, the keep-alives one
     * whose host did not answer for ~15 s. Then every command would make its own handshake,
     * uncounted. A master older than `olderThanMs` is checked, and started again when it is gone.
     */
    async reopenIfEnded(olderThanMs: number): Promise<void> {
        if (!this.opened || Date.now() - this.openedAt < olderThanMs) return;
        if (await this.masterAlive()) return;
        this.opened = false;
        await this.open();
    }

    private async startMaster(options: { timeoutMs?: number }, signal: AbortSignal): Promise<void> {
        const timeoutMs = Math.min(((this.target.connectTimeout ?? 10) + 5) * 1000, options.timeoutMs ?? Infinity);
        const argv = [
            "ssh", ...this.options,
            "-o", "ControlMaster=yes",
            "-o", `ControlPersist=${this.persistSeconds}`,
            "-n", "-N", "-f", destination(this.target),
        ];
        this.handshakes += 1;
        const result = await this.runner(argv, { timeoutMs, signal });
        if (result.code !== 0) {
            if (signal.aborted) throw new FleetError({ phase: "connect", host: this.target.name, message: "the connection was closed while it was being opened", hint: "nothing ran on the host" });
            const stderr = this.target.proxyJump ? `${result.stderr}${await this.jumpProbe(timeoutMs, signal)}` : result.stderr;
            throw sshError(this.target, stderr, result.timedOut);
        }
        this.opened = true;
        this.openedAt = Date.now();
    }

    /**
     * With ControlPersist, ssh sends the jump hosts' own messages to /dev/null, so a failed master
     * start through jump hosts does not say which hop failed or why. One plain connection (no
     * master, same options: ssh keeps the first ControlPath, so ours goes first) shows them.
     */
    private async jumpProbe(timeoutMs: number, signal: AbortSignal): Promise<string> {
        this.handshakes += 1;
        const argv = ["ssh", "-o", "ControlPath=none", "-o", "ControlMaster=no", ...this.options, "-n", destination(this.target), "true"];
        const probe = await this.runner(argv, { timeoutMs, signal }).catch(() => undefined);
        return probe?.stderr ?? "";
    }

    /** Runs argv on the host over the master. Never throws for a non-zero exit: callers decide. */
    async run(argv: readonly string[], options: RemoteRunOptions = {}): Promise<RunResult> {
        await this.open();
        const command = options.asRoot && this.target.user !== "root" ? ["sudo", "-n", "--", ...argv] : argv;
        // Without input, stdin is /dev/null (-n); with input, a pipe: never a terminal ssh could prompt on.
        const stdin = options.input === undefined ? ["-n"] : [];
        const sshArgv = ["ssh", ...this.clientOptions(), ...stdin, destination(this.target), remoteCommand(command)];
        const result = await this.runner(sshArgv, {
            input: options.input,
            timeoutMs: options.timeoutMs,
            onStdout: options.onStdout,
            onStderr: options.onStderr,
            ...(options.stdoutEncoding ? { stdoutEncoding: options.stdoutEncoding } : {}),
        });
        // 255 is ssh's own failure (connection lost), not the remote command's exit status. A
        // session whose master died (sshd killed on the host) exits 255 without a word: ask the
        // master whether it is still there.
        if (result.code === 255) {
            if (/^(ssh|mux_client|Control socket)|Connection (closed|reset)|Broken pipe/m.test(result.stderr)) {
                throw sshError(this.target, result.stderr, result.timedOut);
            }
            if (!(await this.masterAlive())) {
                this.opened = false;
                throw new FleetError({
                    phase: "connect",
                    host: this.target.name,
                    message: "the SSH connection was lost (its master connection ended)",
                    hint: "the host, its sshd or the network went away; it may be back in a moment",
                    detail: result.stderr,
                });
            }
        }
        return result;
    }

    /** Whether the master connection still runs (`ssh -O check`). */
    async masterAlive(): Promise<boolean> {
        const result = await this.runner(["ssh", ...this.options, "-O", "check", destination(this.target)], { timeoutMs: 5000 });
        return result.code === 0;
    }

    /** Forgets the master (e.g. after it died), so the next command opens a new one. */
    reset(): void {
        this.opened = false;
    }

    /**
     * Stops the master; a start in flight is stopped first (a host that does not answer would hold
     * the caller for its whole timeout), and whatever master it may have made. Safe to call twice or
     * when it never opened.
     */
    async close(): Promise<void> {
        // Stopped in flight, ssh may have just forked its master (it detaches once authenticated):
        // asking it to exit costs nothing when there is none.
        const stopped = this.stopOpening !== undefined;
        this.stopOpening?.abort();
        await this.opening?.catch(() => undefined);
        if (!this.opened && !stopped) return;
        this.opened = false;
        await this.runner(["ssh", ...this.options, "-n", "-O", "exit", destination(this.target)], { timeoutMs: 5000 });
    }
}
