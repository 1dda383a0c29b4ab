// Which hosts a run deploys, when that is known before the program evaluates anything: the
// operator commands say so (NIXOS_FLEET_TARGET_HOSTS, set by `deploy --hosts` and `rollback`), and
// a plain `pulumi up|preview --target <host's urn>` says so on the pulumi command line. Only those
// hosts are evaluated; the engine keeps every other host's recorded state untouched (a targeted
// run neither updates nor deletes a resource it does not target). Anything not understood (a
// glob, a hook's urn, --exclude) means: evaluate every host, as an untargeted run does.
import * as fs from "node:fs";

export const TARGET_HOSTS_ENV = "NIXOS_FLEET_TARGET_HOSTS";

const HOST_URN = /^urn:pulumi:[^:]+::[^:]+::nixos:index:Host::([^:*?[\]]+)$/;

/** The host names of NIXOS_FLEET_TARGET_HOSTS (comma-separated), or undefined when unset. */
export function hostsFromEnv(env: NodeJS.ProcessEnv): string[] | undefined {
    const value = env[TARGET_HOSTS_ENV];
    if (value === undefined || value.trim() === "") return undefined;
    return value.split(",").map((name) => name.trim()).filter(Boolean);
}

/**
 * The hosts a pulumi command line targets (`--target urn`, `--target=urn`, `-t urn`), or
 * undefined when it targets no host in particular (no --target, or one this cannot map to hosts).
 */
export function hostsFromPulumiArgs(argv: readonly string[]): string[] | undefined {
    const targets: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i]!;
        if (arg === "--exclude" || arg.startsWith("--exclude=")) return undefined;
        if (arg === "--target" || arg === "-t" || arg === "--target-replace") {
            if (argv[i + 1] === undefined) return undefined;
            targets.push(argv[++i]!);
        } else if (arg.startsWith("--target=") || arg.startsWith("--target-replace=")) {
            targets.push(arg.slice(arg.indexOf("=") + 1));
        }
    }
    if (targets.length === 0) return undefined;
    const hosts: string[] = [];
    for (const target of targets) {
        const name = HOST_URN.exec(target)?.[1];
        if (name === undefined) return undefined;
        if (!hosts.includes(name)) hosts.push(name);
    }
    return hosts;
}

/** Reads a process's parent pid and argv (Linux /proc); undefined when it cannot. */
export interface ProcessInfo {
    ppid: number;
    argv: string[];
}
export type ProcessReader = (pid: number) => ProcessInfo | undefined;

export const procReader: ProcessReader = (pid) => {
    try {
        const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
        if (argv[argv.length - 1] === "") argv.pop();
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        // pid (comm) state ppid …: comm may hold spaces and parentheses, so read after the last ')'.
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        return Number.isInteger(ppid) ? { ppid, argv } : undefined;
    } catch {
        return undefined;
    }
};

const isPulumiCli = (argv: readonly string[]): boolean => /(^|\/)pulumi$/.test(argv[0] ?? "") && argv.some((arg) => arg === "up" || arg === "preview" || arg === "update");

/**
 * The hosts this run targets: NIXOS_FLEET_TARGET_HOSTS, else the --target options of the pulumi
 * command that started the program (found among its ancestors: the language host starts the
 * program, the pulumi CLI starts the language host). undefined: every host.
 */
export function targetedHosts(env: NodeJS.ProcessEnv, read: ProcessReader = procReader, pid = process.ppid): string[] | undefined {
    const named = hostsFromEnv(env);
    if (named) return named;
    for (let depth = 0, current = pid; depth < 4 && current > 1; depth++) {
        const info = read(current);
        if (!info) return undefined;
        if (isPulumiCli(info.argv)) return hostsFromPulumiArgs(info.argv);
        current = info.ppid;
    }
    return undefined;
}
