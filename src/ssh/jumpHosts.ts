// Jump hosts checked like the host itself. `ssh -J` passes none of our -o options to the ssh it
// starts for each hop, so a hop would run without BatchMode (and could prompt), with the user's
// host-key policy and without a connect timeout. Instead every connection with jump hosts gets
// its own ssh_config in the runtime directory, used with -F (which ssh does pass on to every hop):
// one Host block per hop with the strict settings first (ssh keeps the first value it reads), the
// chain written as ProxyJump between those blocks, and the user's ssh_config included after them
// for everything else. ssh then starts each hop with only `-F <that file> -W … <hop host>`: no
// user, port or option from configuration ends up in the command line ssh runs through a shell.
import { homedir } from "node:os";
import { join } from "node:path";
import { FleetError } from "../errors";
import type { SshTarget } from "./target";

export interface JumpHop {
    /** As written in proxyJump, for messages. */
    spec: string;
    user?: string;
    /** Host name, IP address (IPv6 without brackets) or ssh_config alias. */
    host: string;
    port?: number;
}

const HOP = /^(?:([A-Za-z0-9_.-]+)@)?(?:([A-Za-z0-9_.-]+)|\[([0-9A-Fa-f:.]+)\])(?::(\d{1,5}))?$/;

/** The hops of a proxyJump list, first hop first; throws a FleetError for anything else. */
export function parseProxyJump(target: Pick<SshTarget, "name" | "address" | "proxyJump">): JumpHop[] {
    if (!target.proxyJump) return [];
    const hops = target.proxyJump.split(",").map((spec) => parseHop(target, spec));
    const seen = new Set<string>();
    for (const hop of hops) {
        if (hop.host === target.address) throw jumpError(target, `the host ${target.address} cannot be its own jump host`);
        if (seen.has(hop.host)) throw jumpError(target, `jump host ${hop.host} appears twice in proxyJump`);
        seen.add(hop.host);
    }
    return hops;
}

function parseHop(target: Pick<SshTarget, "name">, spec: string): JumpHop {
    const match = HOP.exec(spec);
    const port = match?.[4] === undefined ? undefined : Number(match[4]);
    if (!match || spec.startsWith("-") || (port !== undefined && (port < 1 || port > 65535))) {
        throw jumpError(target, `jump host ${JSON.stringify(spec)} is not [user@]host[:port]`);
    }
    return { spec, host: match[2] ?? match[3] ?? "", ...(match[1] ? { user: match[1] } : {}), ...(port !== undefined ? { port } : {}) };
}

function jumpError(target: Pick<SshTarget, "name">, message: string): FleetError {
    return new FleetError({ phase: "connect", host: target.name, message, hint: 'proxyJump is "[user@]host[:port][,[user@]host[:port]...]", first hop first' });
}

/** How a hop is named in ProxyJump and -J (IPv6 addresses in brackets). */
export function hopName(hop: Pick<JumpHop, "host">): string {
    return hop.host.includes(":") ? `[${hop.host}]` : hop.host;
}

/** The ssh_config files the generated one includes: the host's sshConfigFile, or the usual two. */
export function includedConfigs(target: Pick<SshTarget, "sshConfigFile">, home = homedir()): string[] {
    return target.sshConfigFile ? [target.sshConfigFile] : [join(home, ".ssh", "config"), "/etc/ssh/ssh_config"];
}

/** A value in ssh_config, double-quoted; anything that could break out of the quotes is refused. */
export function configValue(target: Pick<SshTarget, "name">, value: string): string {
    if (/["\\\s\u0000-\u001f\u007f]/.test(value)) {
        throw new FleetError({
            phase: "connect",
            host: target.name,
            message: `${JSON.stringify(value)} cannot be written into an ssh_config (quotes, backslashes, whitespace or control characters)`,
            hint: "move the file to a plain path",
        });
    }
    return `"${value}"`;
}

/**
 * The ssh_config for a connection through jump hosts: a Host block per hop with BatchMode, the
 * connect timeout and strict host-key checking (against the host's knownHostsFile when it has
 * one; a pinned hostKey is the host's own and does not cover its jump hosts, nor does
 * insecureSkipHostKeyCheck), then the user's ssh_config for the rest.
 */
export function jumpSshConfig(target: SshTarget, home = homedir()): string {
    const hops = parseProxyJump(target);
    const lines = [`# nixos-fleet: jump hosts of ${target.name}, generated for one connection`];
    hops.forEach((hop, index) => {
        lines.push(`Host ${hop.host}`);
        if (hop.user) lines.push(`    User ${hop.user}`);
        if (hop.port !== undefined) lines.push(`    Port ${hop.port}`);
        lines.push(
            "    BatchMode yes",
            `    ConnectTimeout ${target.connectTimeout ?? 10}`,
            "    StrictHostKeyChecking yes",
            "    ServerAliveInterval 5",
            "    ServerAliveCountMax 3",
        );
        if (target.knownHostsFile) lines.push(`    UserKnownHostsFile ${configValue(target, target.knownHostsFile)}`);
        const previous = hops[index - 1];
        if (previous) lines.push(`    ProxyJump ${hopName(previous)}`);
    });
    // Outside any Host block, so the user's settings (their own Host and Match blocks) apply as before.
    lines.push("Match all");
    for (const file of includedConfigs(target, home)) lines.push(`    Include ${configValue(target, file)}`);
    return `${lines.join("\n")}\n`;
}

/** The hop ssh connects through directly (the last one): what goes after -J. */
export function lastHop(target: SshTarget): string | undefined {
    const hops = parseProxyJump(target);
    const last = hops[hops.length - 1];
    return last && hopName(last);
}
