// Rules for the fields that become ssh arguments. Everything here ends up in NIX_SSHOPTS or on an
// ssh command line, so the rules reject whitespace and leading dashes outright and keep
// host-key checking on unless the host file says otherwise in so many words.
import { z } from "zod";
import { sshOptionRefusal } from "../ssh/optionPolicy";
import { describeValue, expecting, failure, matching } from "./rules";

const ADDRESS_RULE = "a host name, IP address or ssh_config alias";

export function address() {
    return z.string(expecting(ADDRESS_RULE)).superRefine((value, context) => {
        const problem = addressProblem(value);
        if (problem) context.addIssue({ code: "custom", ...problem });
    });
}

function addressProblem(value: string): ReturnType<typeof failure> | undefined {
    if (value.includes("@")) {
        const [user, host] = value.split("@", 2);
        return failure(`address ${describeValue(value)} contains a user`, `write "address: ${host}" and "user: ${user}"`);
    }
    const hostAndPort = /^([^:]+):(\d+)$/.exec(value);
    if (hostAndPort) {
        return failure(`address ${describeValue(value)} contains a port`, `write "address: ${hostAndPort[1]}" and "port: ${hostAndPort[2]}"`);
    }
    if (value.startsWith("-") || !/^[A-Za-z0-9_.%:[\]-]+$/.test(value)) {
        return failure(`expected ${ADDRESS_RULE}, got ${describeValue(value)}`);
    }
    // A DNS name has at most 253 characters; an input from another resource could be anything.
    if (value.length > 253) return failure(`address ${describeValue(value)} is ${value.length} characters long; a host name has at most 253`);
    return undefined;
}

export const USER_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;
export const userName = () => matching(USER_PATTERN, "a user name (letters, digits, '_', '.', '-'; not starting with a digit or '-')");

// IPv6 zone ids ("%eth0") are left out: ssh would read the % as one of its %-tokens.
const JUMP_HOP = /^(?:[A-Za-z0-9_.-]+@)?(?:([A-Za-z0-9_.-]+)|\[([0-9A-Fa-f:.]+)\])(?::(\d{1,5}))?$/;
const PROXY_JUMP_RULE = "an ssh -J jump list: [user@]host[:port][,[user@]host[:port]...]";

export function proxyJump() {
    return z
        .string(expecting(PROXY_JUMP_RULE))
        .refine((value) => value.split(",").every((hop) => jumpHopHost(hop) !== undefined), expecting(PROXY_JUMP_RULE))
        .superRefine((value, context) => {
            const hosts = value.split(",").map(jumpHopHost);
            const repeated = hosts.find((host, index) => host !== undefined && hosts.indexOf(host) !== index);
            if (repeated) context.addIssue({ code: "custom", ...failure(`jump host ${describeValue(repeated)} appears twice`, "list each jump host once, first hop first") });
        });
}

/** The host of one `[user@]host[:port]` hop, or undefined when it is not one. */
export function jumpHopHost(hop: string): string | undefined {
    const match = JUMP_HOP.exec(hop);
    if (!match || hop.startsWith("-")) return undefined;
    const port = match[3] === undefined ? 22 : Number(match[3]);
    return port >= 1 && port <= 65535 ? (match[1] ?? match[2]) : undefined;
}

/** Key types OpenSSH pins in known_hosts. */
export const HOST_KEY_TYPES = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
] as const;
const HOST_KEY_RULE = 'a public host key "<type> <base64>", e.g. the output of `ssh-keyscan -t ed25519 <host>` without the host';

export function hostKey() {
    return z
        .string(expecting(HOST_KEY_RULE))
        .superRefine((value, context) => {
            const problem = hostKeyProblem(value.trim());
            if (problem) context.addIssue({ code: "custom", ...problem });
        });
}

function hostKeyProblem(value: string): ReturnType<typeof failure> | undefined {
    const match = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: [^\n]*)?$/.exec(value);
    if (!match) return failure(`expected ${HOST_KEY_RULE}, got ${describeValue(value)}`);
    const [, type = "", blob = ""] = match;
    if (!(HOST_KEY_TYPES as readonly string[]).includes(type)) {
        return failure(`unsupported host key type ${describeValue(type)}`, `supported types: ${HOST_KEY_TYPES.join(", ")}`);
    }
    // The base64 blob starts with its own type name; a mismatch means a truncated or mixed-up key.
    const decoded = Buffer.from(blob, "base64");
    const nameLength = decoded.length >= 4 ? decoded.readUInt32BE(0) : -1;
    if (nameLength < 0 || decoded.subarray(4, 4 + nameLength).toString("latin1") !== type) {
        return failure(`host key ${describeValue(value)} is not a valid ${type} key`, "copy the whole key from `ssh-keyscan` or /etc/ssh/ssh_host_*_key.pub on the host");
    }
    return undefined;
}

const SSH_OPTION_RULE = 'an ssh option "Key=Value" without spaces, e.g. "ServerAliveInterval=15"';

/** One entry of `sshOptions`: only allow-listed options (src/ssh/optionPolicy.ts) with valid values. */
export function sshOption() {
    return z.string(expecting(SSH_OPTION_RULE)).superRefine((value, context) => {
        const problem = sshOptionProblem(value);
        if (problem) context.addIssue({ code: "custom", ...problem });
    });
}

function sshOptionProblem(value: string): ReturnType<typeof failure> | undefined {
    if (value.startsWith("-")) return failure(`ssh option ${describeValue(value)} starts with "-"`, 'write only "Key=Value"; nixos-fleet adds the -o');
    const refusal = sshOptionRefusal(value);
    return refusal && failure(`ssh option ${describeValue(value)} ${refusal.message}`, refusal.hint);
}
