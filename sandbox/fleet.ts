// The sandbox fleet: local test hosts that behave like NixOS targets. Each host is a
// systemd-nspawn container booting real systemd on an overlay of a shared base root, with its own
// writable layer, /nix store, tmpfs /run, hostname, machine id and sshd on 127.0.0.1:<port>.
// This is the API the CLI (sandbox/cli.ts), the tests and the product use.
import * as fs from "node:fs";
import { remoteCommand } from "../src/ssh/quote";
import * as path from "node:path";
import { ProcessRunner, RunResult, runChecked, runProcess } from "../src/process/runner";
import { ensureBaseRoot, installLayer } from "./base";
import { cgroupPids, containerInit, hostCgroups, killCgroups, pidsIn, removeCgroups } from "./cgroups";
import { ClientHostEntry, knownHosts, sshConfig, writeAtomically } from "./client-config";
import { installFlake, installTools } from "./flake-template";
import { HOST_PATH, writeHostFiles } from "./host-files";
import { ensureKeyPair, keyWithoutComment } from "./keys";
import { DEFAULT_KNOBS, KnobFile, Knobs, knobsSchema, nixSystem, readKnobFile, writeKnobFile } from "./knobs";
import { DEFAULT_HOSTS, SandboxLayout, checkHostName, defaultSandboxDir, sourceDir } from "./layout";
import { DEFAULT_PORT_BASE, EPHEMERAL_RANGE_FILE, allocatePorts, ephemeralPortRange, isPortFree, portsInRange, readPorts, releasePort, webPortKey, writePorts } from "./ports";
import { forEachLimited, isListening, sleep, sshBanner, waitForHost } from "./wait";

export { DEFAULT_HOSTS } from "./layout";
export { DEPLOYER_USER } from "./host-files";
export type { Knobs } from "./knobs";

export interface SandboxFleetOptions {
    /** State dir; default $SANDBOX_DIR or <project>/.sandbox. */
    dir?: string;
    /** First port tried for new hosts; default $SANDBOX_PORT_BASE or 22200. Not inside the kernel's ephemeral port range (see ports.ts). */
    portBase?: number;
    runner?: ProcessRunner;
    /** Progress lines (the CLI prints them); default: silent. */
    log?: (line: string) => void;
}

/** How a deployer reaches one host. */
export interface SandboxHost {
    name: string;
    address: "127.0.0.1";
    port: number;
    user: string;
    identityFile: string;
    knownHostsFile: string;
    sshConfigFile: string;
    /** "ssh-ed25519 AAAA…" */
    hostPublicKey: string;
    /** 127.0.0.1 port of the host's web.service. */
    webPort: number;
}

export interface HostStatus {
    name: string;
    running: boolean;
    port: number | undefined;
    pids: number[];
    knobs: Knobs;
    /** Its systemd-nspawn and boot loop run (false: the container was orphaned; `start` restarts it). */
    supervised: boolean;
    /** Port of the host's web.service (the toy system's page). */
    webPort: number | undefined;
    /** Store paths read from the host's /run and /nix (undefined when absent). */
    currentSystem: string | undefined;
    bootedSystem: string | undefined;
    bootDefault: string | undefined;
    /** "system-N-link" of the host's system profile. */
    profileGeneration: string | undefined;
    /** Units systemd reports as failed (empty when stopped). */
    failedUnits: string[];
}

export interface ExecOptions {
    /** Login user: "root" (default) or "deployer" (passwordless sudo). */
    user?: string;
    input?: string;
    timeoutMs?: number;
}

const START_CONCURRENCY = 8;

function envPortBase(): number {
    const raw = process.env.SANDBOX_PORT_BASE;
    if (raw === undefined || raw === "") return DEFAULT_PORT_BASE;
    const base = Number(raw);
    if (!Number.isInteger(base) || base < 1024 || base > 65000) throw new Error(`SANDBOX_PORT_BASE must be a port number in 1024..65000, not '${raw}'`);
    return base;
}

function readLinkOrUndefined(file: string): string | undefined {
    try {
        return fs.readlinkSync(file);
    } catch {
        return undefined;
    }
}

function signal(pids: readonly number[], sig: NodeJS.Signals): void {
    for (const pid of pids) {
        try {
            process.kill(pid, sig);
        } catch {
            // already gone
        }
    }
}

const INOTIFY_INSTANCES = "/proc/sys/fs/inotify/max_user_instances";
const WANTED_INOTIFY_INSTANCES = 8192;

/**
 * Every host's systemd and journald take several inotify instances; the kernel's default of 128
 * per user (all hosts run as root) stops the 20th host from booting. Raised as root, said aloud.
 */
function raiseInotifyLimit(log: (line: string) => void): void {
    const current = Number(fs.readFileSync(INOTIFY_INSTANCES, "utf8").trim());
    if (current >= WANTED_INOTIFY_INSTANCES) return;
    fs.writeFileSync(INOTIFY_INSTANCES, String(WANTED_INOTIFY_INSTANCES));
    log(`raised fs.inotify.max_user_instances from ${current} to ${WANTED_INOTIFY_INSTANCES} (each host's systemd needs several)`);
}

function assertRoot(): void {
    if (process.getuid?.() === 0) return;
    throw new Error(
        "sandbox hosts need root: they are systemd-nspawn containers on overlay mounts with their own cgroups. " +
            "Run as root (e.g. `sudo -E npm run sandbox -- start`).",
    );
}

export class SandboxFleet {
    readonly dir: string;
    readonly layout: SandboxLayout;
    readonly portBase: number;
    private readonly runner: ProcessRunner;
    private readonly log: (line: string) => void;
    /** Set by closeStarts: no host starts any more (a Ctrl-C while the fleet starts). */
    private closing = false;
    /** The hosts' boots under way, so closeStarts can wait for them. */
    private readonly boots = new Set<Promise<void>>();

    constructor(options: SandboxFleetOptions = {}) {
        this.dir = path.resolve(options.dir ?? defaultSandboxDir());
        this.layout = new SandboxLayout(this.dir);
        this.portBase = options.portBase ?? envPortBase();
        this.runner = options.runner ?? runProcess;
        this.log = options.log ?? (() => undefined);
    }

    /** The toy flake (outside git); hosts' configurations are nixosConfigurations.<name>. */
    get flakeDir(): string {
        return this.layout.flakeDir;
    }

    get flakeRef(): string {
        return `path:${this.layout.flakeDir}`;
    }

    /** Hosts that have state in the dir (started at least once, not destroyed). */
    names(): string[] {
        if (!fs.existsSync(this.layout.hostsDir)) return [];
        return fs
            .readdirSync(this.layout.hostsDir)
            .filter((n) => fs.existsSync(`${this.layout.hostKeyFile(n)}.pub`))
            .sort();
    }

    /** Starts the hosts (default alpha beta gamma); already running ones are left alone. */
    async start(requested: readonly string[] = DEFAULT_HOSTS): Promise<SandboxHost[]> {
        assertRoot();
        const names = [...new Set(requested)].map(checkHostName);
        const started = Date.now();
        fs.mkdirSync(this.dir, { recursive: true });
        installFlake(this.layout.flakeDir);
        installTools(this.layout.toolsDir);
        raiseInotifyLimit(this.log);
        const base = await ensureBaseRoot(this.runner, this.log);
        const lower = `${installLayer(this.layout.layersDir)}:${base}`;
        const deployerKey = await ensureKeyPair(this.runner, this.layout.identityFile, "deployer@nixos-fleet-sandbox");

        const ephemeral = ephemeralPortRange();
        const keys = [...names, ...names.map(webPortKey)];
        const ports = await allocatePorts(this.layout.portsFile, this.dir, keys, this.portBase, ephemeral);
        const risky = portsInRange(Object.fromEntries(keys.map((k) => [k, ports[k]!])), ephemeral);
        if (risky.length > 0) {
            this.log(
                `warning: recorded port(s) of ${risky.join(", ")} lie in the kernel's ephemeral port range ${ephemeral.low}..${ephemeral.high} (${EPHEMERAL_RANGE_FILE}); ` +
                    `an outgoing connection can take them before the host binds them. Destroy those hosts to get ports from the base ${this.portBase}`,
            );
        }
        const running = new Set<string>();
        for (const name of names) {
            if (!this.isRunning(name)) continue;
            // Alive but not answering (hung, or half-started before a crash), or running without its
            // systemd-nspawn (killed): restart it.
            if (this.isSupervised(name) && (await sshBanner(ports[name]!))) running.add(name);
            else await this.stopHosts([name], false);
        }
        const toStart = names.filter((n) => !running.has(n));

        try {
            await forEachLimited(toStart, START_CONCURRENCY, async (name) => {
                if (this.closing) throw new Error(`not starting ${name}: the sandbox fleet is being stopped`);
                const boot = this.bootHost(name, base, lower, ports[name]!, ports[webPortKey(name)]!, deployerKey);
                this.boots.add(boot);
                try {
                    await boot;
                } catch (error) {
                    await this.stopHosts([name], false); // no half-started host stays behind
                    throw error;
                } finally {
                    this.boots.delete(boot);
                }
            });
        } finally {
            this.writeClientConfig(); // the hosts that did start stay usable
        }
        this.log(`started ${toStart.length} host(s)${running.size ? `, ${running.size} already running` : ""} in ${Date.now() - started} ms`);
        return names.map((n) => this.host(n));
    }

    private async bootHost(name: string, base: string, lower: string, port: number, webPort: number, deployerKey: string): Promise<void> {
        for (const [what, p] of [["ssh", port], ["web", webPort]] as const) {
            if (!(await isPortFree(p))) {
                throw new Error(`${what} port ${p} of host ${name} is in use by another process (see \`ss -ltnp\`); stop it, or destroy the host to get new ports`);
            }
        }
        fs.mkdirSync(this.layout.hostDir(name), { recursive: true });
        await ensureKeyPair(this.runner, this.layout.hostKeyFile(name), `root@${name}`);
        writeHostFiles(this.layout, base, name, port, deployerKey);
        const knobs = readKnobFile(this.layout.knobFile(name));
        writeKnobFile(this.layout.knobFile(name), this.knobFile(knobs, deployerKey, webPort));

        const logFile = this.layout.logFile(name);
        fs.writeFileSync(logFile, `--- ${new Date().toISOString()} start ${name} on 127.0.0.1:${port}\n`);
        this.releaseBoot(name); // a hold left by a stopped host does not outlive it
        const cgroups = this.cgroups(name);
        removeCgroups(cgroups); // leftovers of a crash would mix with the new boot
        const launched = await runChecked(this.runner, [
            "bash", path.join(sourceDir, "host", "launch.sh"), logFile,
            "unshare", "--mount", "--propagation", "private",
            "bash", path.join(sourceDir, "host", "boot.sh"), this.layout.hostDir(name), name, lower, this.layout.toolsDir, cgroups.join(":"),
            // The toy flake, read-only at the same path: `nixos-rebuild --flake path:<dir>/flake` works on the host.
            this.layout.flakeDir,
        ]);
        const pid = Number(launched.stdout.trim());
        await waitForHost(name, pid, port, logFile);
        this.log(`${name}: up on 127.0.0.1:${port}`);
    }

    private knobFile(existing: KnobFile | undefined, deployerKey: string, webPort: number): KnobFile {
        const knobs = knobsSchema.parse({ ...DEFAULT_KNOBS, ...pickKnobs(existing) });
        return { system: nixSystem(), ...knobs, authorizedKeys: [deployerKey], webPort };
    }

    private cgroups(name: string): string[] {
        return hostCgroups(this.layout.hostDir(name), name);
    }

    private isRunning(name: string): boolean {
        return cgroupPids(this.cgroups(name)).length > 0;
    }

    /** Its systemd-nspawn and boot loop are alive (a container without them cannot reboot). */
    private isSupervised(name: string): boolean {
        const cgroups = this.cgroups(name);
        return pidsIn(cgroups, "container/supervisor").length > 0 && pidsIn(cgroups, "launcher").length > 0;
    }

    /**
     * Starts no more hosts and waits for the boots under way to end (each ends with its host up,
     * or stopped when it failed): a stop or destroy after this finds every host this object
     * started. For a Ctrl-C while `start` runs; this object starts no host afterwards.
     */
    async closeStarts(): Promise<void> {
        this.closing = true;
        await Promise.allSettled([...this.boots]);
    }

    /** Stops the hosts (default: all). Idempotent; also cleans up after crashed hosts. */
    async stop(names?: readonly string[]): Promise<void> {
        await this.stopHosts(names, true);
    }

    /**
     * Halts each host's systemd (nspawn forwards SIGTERM as a shutdown request), waits a moment,
     * then kills whatever is left of its cgroup. `awaitReap`: also wait (up to 3 s) until the
     * machine's init has reaped the killed processes, so that `ps` right after shows no zombies.
     */
    private async stopHosts(names: readonly string[] | undefined, awaitReap: boolean): Promise<void> {
        const targets = names ?? this.names();
        targets.forEach(checkHostName);
        const started = Date.now();
        const killed = new Set<number>();
        await Promise.all(targets.map(async (name) => {
            const cgroups = this.cgroups(name);
            let pids = cgroupPids(cgroups);
            pids.forEach((pid) => killed.add(pid));
            if (pids.length > 0) {
                // Without its systemd-nspawn nobody forwards the halt: kill at once.
                const supervisor = pidsIn(cgroups, "container/supervisor");
                signal(supervisor, "SIGTERM");
                for (let i = 0; supervisor.length > 0 && i < 100 && pids.length > 0; i++) {
                    await sleep(50);
                    pids = cgroupPids(cgroups);
                }
                for (let attempt = 0; pids.length > 0; attempt++) {
                    if (attempt === 50) throw new Error(`could not stop processes ${pids.join(", ")} of host ${name}`);
                    pids.forEach((pid) => killed.add(pid));
                    killCgroups(cgroups);
                    await sleep(50);
                    pids = cgroupPids(cgroups);
                }
            }
            removeCgroups(cgroups);
        }));
        // Dead now; give their reaper a moment so `ps` right after shows no zombies either.
        for (let i = 0; awaitReap && i < 60 && [...killed].some((pid) => fs.existsSync(`/proc/${pid}`)); i++) await sleep(50);
        await this.unmountStale(targets);
        const ports = readPorts(this.layout.portsFile);
        for (const name of killed.size > 0 ? targets : []) {
            for (const port of [ports[name], ports[webPortKey(name)]]) {
                for (let i = 0; port !== undefined && i < 20 && (await isListening(port)); i++) await sleep(50);
            }
        }
        this.log(`stopped ${targets.length} host(s) in ${Date.now() - started} ms`);
    }

    /** The overlay lives in each host's private mount namespace and dies with it; this only catches leaks. */
    private async unmountStale(names: readonly string[]): Promise<void> {
        const mounts = fs.readFileSync("/proc/mounts", "utf8").split("\n");
        for (const name of names) {
            const hostDir = this.layout.hostDir(name);
            const leaked = mounts
                .map((line) => line.split(" ")[1] ?? "")
                .filter((target) => target === hostDir || target.startsWith(`${hostDir}/`))
                .reverse();
            for (const target of leaked) await this.runner(["umount", "-l", target]);
        }
    }

    /** Stops and deletes hosts (their store, keys, knobs, port). No names: the whole fleet. */
    async destroy(names?: readonly string[]): Promise<void> {
        const all = names === undefined;
        const targets = names ?? this.names();
        await this.stop(targets);
        const ports = readPorts(this.layout.portsFile);
        for (const name of targets) {
            fs.rmSync(this.layout.hostDir(name), { recursive: true, force: true });
            fs.rmSync(this.layout.knobFile(name), { force: true });
            for (const key of [name, webPortKey(name)]) {
                const port = ports[key];
                if (port !== undefined) releasePort(port, this.dir);
                delete ports[key];
            }
        }
        if (fs.existsSync(this.dir)) writePorts(this.layout.portsFile, ports);
        if (all) {
            // Only what the sandbox made: SANDBOX_DIR might point at a directory with other files.
            for (const entry of ["hosts", "keys", "flake", "bin", "layers", "known_hosts", "ssh_config", "ports.json"]) {
                fs.rmSync(path.join(this.dir, entry), { recursive: true, force: true });
            }
            if (fs.existsSync(this.dir) && fs.readdirSync(this.dir).length === 0) fs.rmdirSync(this.dir);
        } else if (fs.existsSync(this.dir)) {
            this.writeClientConfig();
        }
        this.log(`destroyed ${targets.length} host(s)`);
    }

    /**
     * Reboots a host as `systemctl reboot` inside it does: systemd shuts down, the container boots
     * again with an empty /run into the boot default generation. Resolves once the new boot
     * answers on SSH. A stopped host is started.
     */
    async reboot(name: string, timeoutMs = 30_000): Promise<void> {
        const before = containerInit(this.cgroups(name));
        if (before === undefined || !this.isSupervised(name)) {
            await this.start([name]); // stopped, or orphaned (nothing would boot it again): a fresh boot
            return;
        }
        await this.console(name, ["systemctl", "reboot"], { timeoutMs: 10_000 });
        await this.waitForReboot(name, before, timeoutMs);
    }

    /**
     * Holds the host's next boot: after a reboot it stays down (no sshd, connections refused) until
     * releaseBoot, as a machine that never comes back would. Tests of a reboot that times out use it.
     */
    holdBoot(name: string): void {
        checkHostName(name);
        fs.writeFileSync(path.join(this.layout.hostDir(name), "hold-boot"), "");
    }

    /** Lets a held boot go on (and the next ones); the host then boots as after any reboot. */
    releaseBoot(name: string): void {
        checkHostName(name);
        fs.rmSync(path.join(this.layout.hostDir(name), "hold-boot"), { force: true });
    }

    /** Waits until the host runs a new boot (a new container pid 1) that answers on SSH. */
    async waitForReboot(name: string, previousInit: number, timeoutMs = 30_000): Promise<void> {
        const port = this.host(name).port;
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const init = containerInit(this.cgroups(name));
            if (init !== undefined && init !== previousInit && (await sshBanner(port))) return;
            if (!this.isRunning(name)) throw new Error(`host ${name} stopped instead of rebooting; ${this.layout.logFile(name)}`);
            if (Date.now() > deadline) throw new Error(`host ${name} did not come back from a reboot within ${timeoutMs} ms; ${this.layout.logFile(name)}`);
            await sleep(100);
        }
    }

    /** The container's pid 1 as the machine sees it (changes at every boot), or undefined. */
    initPid(name: string): number | undefined {
        return containerInit(this.cgroups(name));
    }

    async status(): Promise<HostStatus[]> {
        const ports = readPorts(this.layout.portsFile);
        return Promise.all(this.names().map(async (name) => {
            const cgroups = this.cgroups(name);
            const init = containerInit(cgroups);
            const run = init !== undefined ? `/proc/${init}/root/run` : undefined;
            const nix = path.join(this.layout.nixDir(name), "var", "nix");
            return {
                name,
                running: init !== undefined,
                supervised: init !== undefined && this.isSupervised(name),
                port: ports[name],
                webPort: ports[webPortKey(name)],
                pids: cgroupPids(cgroups),
                knobs: knobsSchema.parse({ ...DEFAULT_KNOBS, ...pickKnobs(readKnobFile(this.layout.knobFile(name))) }),
                currentSystem: run && readLinkOrUndefined(`${run}/current-system`),
                bootedSystem: run && readLinkOrUndefined(`${run}/booted-system`),
                bootDefault: readLinkOrUndefined(path.join(nix, "sandbox", "boot-default")),
                profileGeneration: readLinkOrUndefined(path.join(nix, "profiles", "system")),
                failedUnits: init !== undefined ? await this.failedUnits(name) : [],
            };
        }));
    }

    /** What the host's sshd logged since this boot (its journal): logins, refusals. */
    async sshdLog(name: string): Promise<string> {
        const result = await this.console(name, ["journalctl", "--unit=ssh.service", "--output=cat", "--no-pager", "--boot"], { timeoutMs: 10_000 });
        if (result.code !== 0) throw new Error(`reading the sshd journal of ${name} failed: ${result.stderr.trim()}`);
        return result.stdout;
    }

    /** Units systemd on the host reports as failed (`systemctl --failed`). */
    async failedUnits(name: string): Promise<string[]> {
        const result = await this.console(name, ["systemctl", "--failed", "--plain", "--no-legend", "--no-pager"], { timeoutMs: 10_000 });
        if (result.code !== 0) return [`(systemctl failed: ${result.stderr.trim()})`];
        return result.stdout.split("\n").map((line) => line.trim().split(/\s+/)[0] ?? "").filter(Boolean);
    }

    /** Connection facts for one host (it must have been started once). */
    host(name: string, user = "root"): SandboxHost {
        checkHostName(name);
        const ports = readPorts(this.layout.portsFile);
        const port = ports[name];
        const pub = `${this.layout.hostKeyFile(name)}.pub`;
        if (port === undefined || !fs.existsSync(pub)) throw new Error(`unknown sandbox host '${name}' in ${this.dir}: start it first`);
        return {
            name,
            address: "127.0.0.1",
            port,
            user,
            identityFile: this.layout.identityFile,
            knownHostsFile: this.layout.knownHostsFile,
            sshConfigFile: this.layout.sshConfigFile,
            hostPublicKey: keyWithoutComment(fs.readFileSync(pub, "utf8")),
            webPort: ports[webPortKey(name)] ?? 0,
        };
    }

    /**
     * ssh options for tools that take them as one string (NIX_SSHOPTS): everything explicit and
     * `-F /dev/null`, so no ssh_config adds keys behind the caller's back.
     */
    sshOptions(name: string): string[] {
        const h = this.host(name);
        return [
            "-F", "/dev/null", "-p", String(h.port), "-i", h.identityFile,
            "-o", "IdentitiesOnly=yes", "-o", `UserKnownHostsFile=${h.knownHostsFile}`,
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        ];
    }

    /** NIX_SSHOPTS value (nix splits it on whitespace, so the sandbox dir must not contain any). */
    nixSshOpts(name: string): string {
        const options = this.sshOptions(name);
        if (options.some((o) => /\s/.test(o))) throw new Error(`NIX_SSHOPTS cannot carry paths with whitespace: ${this.dir}`);
        return options.join(" ");
    }

    /** Store URI for nix copy (the port travels in NIX_SSHOPTS, not in the URI). */
    storeUri(user = "root"): string {
        return `ssh-ng://${user}@127.0.0.1`;
    }

    /** Runs argv on the host over ssh (quoted for the remote shell); never rejects on exit codes. */
    async exec(name: string, argv: readonly string[], options: ExecOptions = {}): Promise<RunResult> {
        if (argv.length === 0) throw new Error("exec: empty command");
        const h = this.host(name);
        const user = options.user ?? "root";
        return this.runner(
            ["ssh", "-F", h.sshConfigFile, "-l", user, name, "--", remoteCommand(argv)],
            { input: options.input, timeoutMs: options.timeoutMs },
        );
    }

    /**
     * Runs argv as root inside the host without SSH, like a cloud provider's console: for
     * inspecting or repairing a host the deployer locked itself out of (breakSsh=true). The command
     * joins the host's namespaces and its cgroup (so `stop` ends it too).
     */
    async console(name: string, argv: readonly string[], options: Omit<ExecOptions, "user"> = {}): Promise<RunResult> {
        if (argv.length === 0) throw new Error("console: empty command");
        const cgroups = this.cgroups(name);
        const init = containerInit(cgroups);
        if (init === undefined) throw new Error(`sandbox host '${name}' is not running`);
        return this.runner(
            ["bash", path.join(sourceDir, "host", "enter.sh"), cgroups.join(":"), String(init), "env", "-i", `PATH=${HOST_PATH}`, "HOME=/root", "LANG=C.UTF-8", ...argv],
            { input: options.input, timeoutMs: options.timeoutMs },
        );
    }

    /** Changes knobs of a host's configuration (takes effect on the next build/deploy). */
    async set(name: string, knobs: Partial<Knobs>): Promise<KnobFile> {
        checkHostName(name);
        installFlake(this.layout.flakeDir);
        const file = this.layout.knobFile(name);
        const existing = readKnobFile(file);
        const merged = knobsSchema.parse({ ...DEFAULT_KNOBS, ...pickKnobs(existing), ...knobs });
        const content: KnobFile = {
            system: existing?.system ?? nixSystem(),
            ...merged,
            authorizedKeys: existing?.authorizedKeys ?? [],
            webPort: existing?.webPort ?? 0,
        };
        writeKnobFile(file, content);
        return content;
    }

    private writeClientConfig(): void {
        const ports = readPorts(this.layout.portsFile);
        const entries: ClientHostEntry[] = this.names()
            .filter((n) => ports[n] !== undefined)
            .map((n) => ({ name: n, port: ports[n]!, hostPublicKey: keyWithoutComment(fs.readFileSync(`${this.layout.hostKeyFile(n)}.pub`, "utf8")) }));
        writeAtomically(this.layout.knownHostsFile, knownHosts(entries));
        writeAtomically(this.layout.sshConfigFile, sshConfig(entries, this.layout.identityFile, this.layout.knownHostsFile));
    }
}

function pickKnobs(file: KnobFile | undefined): Partial<Knobs> {
    if (!file) return {};
    const picked: Partial<Knobs> = {};
    for (const key of Object.keys(DEFAULT_KNOBS) as Array<keyof Knobs>) {
        if (file[key] !== undefined) Object.assign(picked, { [key]: file[key] });
    }
    return picked;
}
