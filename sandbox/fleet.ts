// The sandbox fleet: local test hosts that behave like NixOS targets. Each host is a set of
// namespaces (uts, mount, pid) with its own /nix store, /run, /root, /home and hostname, running
// sshd on 127.0.0.1:<port>. This is the API the CLI (sandbox/cli.ts), the tests and the product use.
import * as fs from "node:fs";
import { remoteCommand } from "../src/ssh/quote";
import * as path from "node:path";
import { ProcessRunner, RunResult, runChecked, runProcess } from "../src/process/runner";
import { ClientHostEntry, knownHosts, sshConfig, writeAtomically } from "./client-config";
import { installFlake, installTools } from "./flake-template";
import { HOST_PATH, writeHostFiles } from "./host-files";
import { ensureKeyPair, keyWithoutComment } from "./keys";
import { DEFAULT_KNOBS, KnobFile, Knobs, knobsSchema, nixSystem, readKnobFile, writeKnobFile } from "./knobs";
import { DEFAULT_HOSTS, SandboxLayout, checkHostName, defaultSandboxDir, sourceDir } from "./layout";
import { DEFAULT_PORT_BASE, allocatePorts, isPortFree, readPorts, releasePort, writePorts } from "./ports";
import { ProcessInfo, hostProcesses, killAll, listProcesses, sleep } from "./processes";
import { forEachLimited, isListening, sshBanner, waitForHost } from "./wait";

export { DEFAULT_HOSTS } from "./layout";
export { DEPLOYER_USER } from "./host-files";
export type { Knobs } from "./knobs";

export interface SandboxFleetOptions {
    /** State dir; default $SANDBOX_DIR or <project>/.sandbox. */
    dir?: string;
    /** First port tried for new hosts; default $SANDBOX_PORT_BASE or 22200. */
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
}

export interface HostStatus {
    name: string;
    running: boolean;
    port: number | undefined;
    pids: number[];
    knobs: Knobs;
    /** Store paths read from the host's namespace / store (undefined when absent). */
    currentSystem: string | undefined;
    bootedSystem: string | undefined;
    bootDefault: string | undefined;
    /** "system-N-link" of the host's system profile. */
    profileGeneration: string | undefined;
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

function assertRoot(): void {
    if (process.getuid?.() === 0) return;
    throw new Error(
        "sandbox hosts need root: they are mount/pid/uts namespaces (CAP_SYS_ADMIN) running sshd and sudo. " +
            "Run as root (e.g. `sudo -E npm run sandbox -- start`). The unprivileged user-namespace variant is not " +
            "implemented: sshd and sudo in it need a full 0-65535 uid map, which only newuidmap with /etc/subuid entries can write.",
    );
}

export class SandboxFleet {
    readonly dir: string;
    readonly layout: SandboxLayout;
    readonly portBase: number;
    private readonly runner: ProcessRunner;
    private readonly log: (line: string) => void;

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
        const deployerKey = await ensureKeyPair(this.runner, this.layout.identityFile, "deployer@nixos-fleet-sandbox");

        const processes = await listProcesses(this.runner);
        const ports = await allocatePorts(this.layout.portsFile, this.dir, names, this.portBase);
        const running = new Set<string>();
        for (const name of names) {
            if (hostProcesses(processes, this.layout.hostDir(name)).length === 0) continue;
            // Alive but not answering (hung, or half-started before a crash): restart it.
            if (await sshBanner(ports[name]!)) running.add(name);
            else await this.stopHosts([name], false);
        }
        const toStart = names.filter((n) => !running.has(n));

        try {
            await forEachLimited(toStart, START_CONCURRENCY, async (name) => {
                try {
                    await this.bootHost(name, ports[name]!, deployerKey);
                } catch (error) {
                    await this.stopHosts([name], false); // no half-started host stays behind
                    throw error;
                }
            });
        } finally {
            this.writeClientConfig(); // the hosts that did start stay usable
        }
        this.log(`started ${toStart.length} host(s)${running.size ? `, ${running.size} already running` : ""} in ${Date.now() - started} ms`);
        return names.map((n) => this.host(n));
    }

    private async bootHost(name: string, port: number, deployerKey: string): Promise<void> {
        if (!(await isPortFree(port))) {
            throw new Error(`port ${port} of host ${name} is in use by another process (see \`ss -ltnp\`); stop it, or destroy the host to get a new port`);
        }
        const hostDir = this.layout.hostDir(name);
        fs.mkdirSync(hostDir, { recursive: true });
        await ensureKeyPair(this.runner, this.layout.hostKeyFile(name), `root@${name}`);
        writeHostFiles(this.layout, name, port, deployerKey);
        const knobs = readKnobFile(this.layout.knobFile(name));
        writeKnobFile(this.layout.knobFile(name), this.knobFile(knobs, deployerKey));

        const logFile = this.layout.logFile(name);
        fs.writeFileSync(logFile, `--- ${new Date().toISOString()} start ${name} on 127.0.0.1:${port}\n`);
        const launched = await runChecked(this.runner, [
            "bash", path.join(sourceDir, "host", "launch.sh"), logFile,
            "unshare", "--uts", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--mount-proc",
            "bash", path.join(sourceDir, "host", "init.sh"), hostDir, name, this.layout.toolsDir,
        ]);
        const pid = Number(launched.stdout.trim());
        await waitForHost(name, pid, port, logFile);
        this.log(`${name}: up on 127.0.0.1:${port}`);
    }

    private knobFile(existing: KnobFile | undefined, deployerKey: string): KnobFile {
        const knobs = knobsSchema.parse({ ...DEFAULT_KNOBS, ...pickKnobs(existing) });
        return { system: nixSystem(), ...knobs, authorizedKeys: [deployerKey] };
    }

    /** Stops the hosts (default: all). Idempotent; also cleans up after crashed hosts. */
    async stop(names?: readonly string[]): Promise<void> {
        await this.stopHosts(names, true);
    }

    /**
     * `awaitReap`: also wait (up to 3 s) until the machine's init has reaped the killed
     * processes, so that `ps` right after shows no zombies; init reaps lazily on some machines.
     */
    private async stopHosts(names: readonly string[] | undefined, awaitReap: boolean): Promise<void> {
        const targets = names ?? this.names();
        targets.forEach(checkHostName);
        const started = Date.now();
        let processes = await listProcesses(this.runner);
        const owned = (all: readonly ProcessInfo[]): number[] =>
            targets.flatMap((n) => hostProcesses(all, this.layout.hostDir(n)).map((p) => p.pid));
        let pids = owned(processes);
        const killed = new Set<number>();
        for (let attempt = 0; pids.length > 0; attempt++) {
            if (attempt === 50) throw new Error(`could not stop processes ${pids.join(", ")}`);
            // The namespace's pid 1 first: its unshare parent then reaps it and exits by itself,
            // leaving one process, not two, to the machine's reaper.
            const inits = pids.filter((pid) => processes.some((p) => p.pid === pid && pids.includes(p.ppid)));
            killAll(attempt === 0 && inits.length > 0 ? inits : pids);
            pids.forEach((pid) => killed.add(pid));
            await sleep(attempt === 0 ? 10 : 50);
            processes = await listProcesses(this.runner);
            pids = owned(processes);
        }
        // Dead now; give their reaper a moment so `ps` right after shows no zombies either.
        for (let i = 0; awaitReap && i < 60 && [...killed].some((pid) => fs.existsSync(`/proc/${pid}`)); i++) await sleep(50);
        await this.unmountStale(targets);
        // The kernel closes a killed sshd's listener at once; allow a moment before reporting done.
        const ports = readPorts(this.layout.portsFile);
        const hadProcesses = killed.size > 0;
        for (const name of hadProcesses ? targets : []) {
            const port = ports[name];
            for (let i = 0; port !== undefined && i < 20 && (await isListening(port)); i++) await sleep(50);
        }
        this.log(`stopped ${targets.length} host(s) in ${Date.now() - started} ms`);
    }

    /** Mounts live in each host's private namespace and die with it; this only catches leaks. */
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
            const port = ports[name];
            if (port !== undefined) releasePort(port, this.dir);
            delete ports[name];
        }
        if (fs.existsSync(this.dir)) writePorts(this.layout.portsFile, ports);
        if (all) {
            // Only what the sandbox made: SANDBOX_DIR might point at a directory with other files.
            for (const entry of ["hosts", "keys", "flake", "bin", "known_hosts", "ssh_config", "ports.json"]) {
                fs.rmSync(path.join(this.dir, entry), { recursive: true, force: true });
            }
            if (fs.existsSync(this.dir) && fs.readdirSync(this.dir).length === 0) fs.rmdirSync(this.dir);
        } else if (fs.existsSync(this.dir)) {
            this.writeClientConfig();
        }
        this.log(`destroyed ${targets.length} host(s)`);
    }

    /** Simulated reboot: the host restarts into its boot default generation (/run is emptied). */
    async reboot(name: string): Promise<void> {
        await this.stopHosts([name], false);
        await this.start([name]);
    }

    async status(): Promise<HostStatus[]> {
        const processes = await listProcesses(this.runner);
        const ports = readPorts(this.layout.portsFile);
        return this.names().map((name) => {
            const own = hostProcesses(processes, this.layout.hostDir(name));
            // The namespace's pid 1 is the child of the unshare process; its root shows the host's /run.
            const nsInit = own.find((p) => own.some((parent) => parent.pid === p.ppid));
            const nsRoot = nsInit && `/proc/${nsInit.pid}/root/run`;
            const nix = path.join(this.layout.hostDir(name), "nix", "var", "nix");
            return {
                name,
                running: own.length > 0,
                port: ports[name],
                pids: own.map((p) => p.pid),
                knobs: knobsSchema.parse({ ...DEFAULT_KNOBS, ...pickKnobs(readKnobFile(this.layout.knobFile(name))) }),
                currentSystem: nsRoot && readLinkOrUndefined(`${nsRoot}/current-system`),
                bootedSystem: nsRoot && readLinkOrUndefined(`${nsRoot}/booted-system`),
                bootDefault: readLinkOrUndefined(path.join(nix, "sandbox", "boot-default")),
                profileGeneration: readLinkOrUndefined(path.join(nix, "profiles", "system")),
            };
        });
    }

    /** Connection facts for one host (it must have been started once). */
    host(name: string, user = "root"): SandboxHost {
        checkHostName(name);
        const port = readPorts(this.layout.portsFile)[name];
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
     * Runs argv as root inside the host's namespaces without SSH, like a cloud provider's console:
     * for inspecting or repairing a host the deployer locked itself out of (breakSsh=true).
     */
    async console(name: string, argv: readonly string[], options: Omit<ExecOptions, "user"> = {}): Promise<RunResult> {
        if (argv.length === 0) throw new Error("console: empty command");
        const pid = await this.namespacePid(name);
        return this.runner(
            ["nsenter", "--target", String(pid), "--mount", "--uts", "--pid", "--", "env", `PATH=${HOST_PATH}`, "HOME=/root", ...argv],
            { input: options.input, timeoutMs: options.timeoutMs },
        );
    }

    /** Pid (outside) of the host namespace's pid 1: the child of its unshare process. */
    private async namespacePid(name: string): Promise<number> {
        const own = hostProcesses(await listProcesses(this.runner), this.layout.hostDir(name));
        const init = own.find((p) => own.some((parent) => parent.pid === p.ppid));
        if (!init) throw new Error(`sandbox host '${name}' is not running`);
        return init.pid;
    }

    /** Changes knobs of a host's configuration (takes effect on the next build/deploy). */
    async set(name: string, knobs: Partial<Knobs>): Promise<KnobFile> {
        checkHostName(name);
        installFlake(this.layout.flakeDir);
        const file = this.layout.knobFile(name);
        const existing = readKnobFile(file);
        const merged = knobsSchema.parse({ ...DEFAULT_KNOBS, ...pickKnobs(existing), ...knobs });
        const content: KnobFile = { system: existing?.system ?? nixSystem(), ...merged, authorizedKeys: existing?.authorizedKeys ?? [] };
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
