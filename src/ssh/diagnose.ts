// Turns what OpenSSH prints on a failed connection into an operator's hint. The patterns are the
// client's own messages (see also docs/operations guide, troubleshooting).
import { FleetError, type FleetErrorFields } from "../errors";
import { parseProxyJump, type JumpHop } from "./jumpHosts";
import { hostKeyAlias, type SshTarget } from "./target";

interface Diagnosis {
    message: string;
    hint: string;
    /** Waiting cannot mend it (a host key that is not the known one, a refused login): a later attempt fails the same way. */
    lasting?: true;
}

function where(target: SshTarget): string {
    return `${target.user}@${target.address}${target.port ? `:${target.port}` : ""}`;
}

/** What a failing ssh says about one host: the first such line in its output. */
interface HostEvent {
    kind: "unknown-key" | "changed-key" | "refused" | "unresolved" | "timeout" | "denied";
    /** The host as ssh printed it (e.g. "bastion", "[10.0.0.1]:2200"). */
    named: string;
    index: number;
}

const HOST_EVENTS: ReadonlyArray<[HostEvent["kind"], RegExp]> = [
    ["unknown-key", /No (?:\S+ )?host key is known for (\S+) and you have requested strict checking/],
    ["changed-key", /Host key for (\S+) has changed/],
    ["refused", /ssh: connect to host (\S+) port \d+: Connection refused/],
    ["timeout", /ssh: connect to host (\S+) port \d+: Connection timed out/],
    ["unresolved", /ssh: Could not resolve hostname ([^\s:]+)/],
    ["denied", /\S+@(\S+): Permission denied/],
];

// What the deploying ssh prints when the ssh it started for the jump host ended during the handshake.
const PROXY_ENDED = /Connection closed by UNKNOWN port 65535|kex_exchange_identification: Connection closed by remote host|Connection to UNKNOWN port 65535 timed out/;

function firstHostEvent(stderr: string): HostEvent | undefined {
    let first: HostEvent | undefined;
    for (const [kind, pattern] of HOST_EVENTS) {
        const match = pattern.exec(stderr);
        if (match && (!first || match.index < first.index)) first = { kind, named: match[1] ?? "", index: match.index };
    }
    return first;
}

/** `[10.0.0.1]:2200` → `10.0.0.1` */
function bareHost(named: string): string {
    return /^\[([^\]]+)\](?::\d+)?$/.exec(named)?.[1] ?? named;
}

/**
 * The jump host a failure is about, when it is about one: ssh names the host whose check failed,
 * which is a hop of proxyJump, or (for a hop that is an ssh_config alias) a name that is not the
 * host's, after which the deploying ssh reports its proxy gone.
 */
function failingJumpHost(target: SshTarget, stderr: string): { hop: string; event: HostEvent } | undefined {
    if (!target.proxyJump) return undefined;
    let hops: JumpHop[];
    try {
        hops = parseProxyJump(target);
    } catch {
        return undefined;
    }
    const event = firstHostEvent(stderr);
    if (!event || event.named === hostKeyAlias(target)) return undefined;
    const named = bareHost(event.named);
    const hop = hops.find((candidate) => candidate.host === named);
    if (hop) return { hop: hop.spec, event };
    if (named === target.address || !PROXY_ENDED.test(stderr.slice(event.index))) return undefined;
    const only = hops.length === 1 ? hops[0] : undefined;
    return { hop: only ? `${only.spec} (${event.named})` : `${event.named}, one of ${hops.map((h) => h.spec).join(", ")}`, event };
}

function jumpDiagnosis(target: SshTarget, hop: string, event: HostEvent): Diagnosis {
    const at = where(target);
    const keys = target.knownHostsFile ? `the host's knownHostsFile (${target.knownHostsFile})` : "your known_hosts (~/.ssh/known_hosts)";
    switch (event.kind) {
        case "unknown-key":
            return {
                lasting: true,
                message: `the host key of jump host ${hop} is not known, so the connection to ${at} was refused`,
                hint: `jump hosts are checked like the host itself: add ${hop}'s key to ${keys} after verifying it out of band (e.g. ssh-keyscan on a trusted network); insecureSkipHostKeyCheck never covers jump hosts`,
            };
        case "changed-key":
            return {
                lasting: true,
                message: `the host key of jump host ${hop} does not match the known key`,
                hint: `if the jump host was reinstalled, verify its new key out of band and update ${keys}; otherwise someone may be intercepting the connection`,
            };
        case "refused":
            return { message: `jump host ${hop} refused the connection (on the way to ${at})`, hint: "check that the jump host is up and sshd listens on that address and port" };
        case "timeout":
            return { message: `jump host ${hop} did not answer within ${target.connectTimeout ?? 10}s (on the way to ${at})`, hint: "check that the jump host is reachable; raise connectTimeout for slow links" };
        case "unresolved":
            return { message: `cannot resolve jump host ${hop}`, hint: "check proxyJump in the host's file (or the Host alias in your ssh_config)" };
        case "denied":
            return { lasting: true, message: `jump host ${hop} refused the login (permission denied)`, hint: "check that your key is authorized for the jump host's user (the user in proxyJump, or your ssh_config's)" };
    }
}

export function diagnoseSshFailure(target: SshTarget, stderr: string, timedOut: boolean): Diagnosis {
    const jump = failingJumpHost(target, stderr);
    if (jump) return jumpDiagnosis(target, jump.hop, jump.event);
    const at = where(target);
    if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/i.test(stderr) && /changed|mismatch|does not match|IDENTIFICATION/i.test(stderr)) {
        return {
            lasting: true,
            message: `the host key of ${at} does not match the pinned/known key`,
            hint: "if the server was reinstalled, verify its new key out of band, then update hostKey (or known_hosts); otherwise someone may be intercepting the connection",
        };
    }
    if (/No (\S+ )?host key is known|Host key verification failed/i.test(stderr)) {
        return {
            lasting: true,
            message: `the host key of ${at} is not known, so the connection was refused`,
            hint: `pin it as hostKey in the host's file or add it to known_hosts after verifying it out of band (e.g. ssh-keyscan on a trusted network)`,
        };
    }
    if (/Permission denied/i.test(stderr)) {
        return {
            lasting: true,
            message: `${at} refused the login (permission denied)`,
            hint: `check that your key (identityFile or ssh-agent) is in ${target.user}'s authorized_keys on the host`,
        };
    }
    if (/Connection refused/i.test(stderr)) {
        return {
            message: `${at} refused the connection`,
            hint: "check that the host is up and sshd listens on that address and port",
        };
    }
    if (/Could not resolve hostname|Name or service not known/i.test(stderr)) {
        return {
            message: `cannot resolve ${target.address}`,
            hint: "check the address in the host's file (or the Host alias in your ssh_config)",
        };
    }
    if (timedOut || /timed out|Connection timed out|banner exchange/i.test(stderr)) {
        return {
            message: `${at} did not answer within ${target.connectTimeout ?? 10}s`,
            hint: "check that the host is up and reachable (network, VPN, firewall); raise connectTimeout for slow links",
        };
    }
    if (/sudo: a password is required|sudo: .*not allowed|is not in the sudoers/i.test(stderr)) {
        return {
            message: `${target.user} cannot run sudo without a password on ${target.address}`,
            hint: "give the deploy user passwordless sudo (NixOS: security.sudo.wheelNeedsPassword = false, or a NOPASSWD rule), or deploy as root",
        };
    }
    return {
        message: `ssh to ${at} failed`,
        hint: "run the same connection by hand (ssh -v) to see why",
    };
}

/** A connection that failed; `lasting` when waiting cannot mend it (see Diagnosis). */
export class ConnectError extends FleetError {
    constructor(
        fields: FleetErrorFields,
        readonly lasting: boolean,
    ) {
        super(fields);
    }
}

/** Whether error is a connection failure that a later attempt would meet again. */
export const isLastingConnectError = (error: unknown): error is ConnectError => error instanceof ConnectError && error.lasting;

export function sshError(target: SshTarget, stderr: string, timedOut: boolean): FleetError {
    const { message, hint, lasting } = diagnoseSshFailure(target, stderr, timedOut);
    return new ConnectError({ phase: "connect", host: target.name, message, hint, detail: withoutConfigText(stderr) }, lasting === true);
}

/**
 * ssh's complaints about a config file quote the line ("<file> line 1: Bad configuration option:
 * <first word>"): an sshConfigFile pointing at /etc/shadow or a passphrase file would put its
 * content into the deploy's output. The file and line are kept, the quoted text is not.
 */
export function withoutConfigText(stderr: string): string {
    return stderr.replace(/^(.+? line \d+): .*$/gm, "$1: not a valid ssh_config line (ssh's message quotes the line, so it is not shown)");
}
