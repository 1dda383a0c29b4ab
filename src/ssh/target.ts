// How to reach one host over SSH: the connection settings of a host file, reduced to what the
// OpenSSH client needs. The user's ~/.ssh/config, agent and jump hosts stay in force unless a
// setting here overrides them.

export interface SshTarget {
    /** The host's name in the fleet (used for messages and the host-key alias). */
    name: string;
    /** Hostname, IP address, or an alias from ssh_config. */
    address: string;
    /** Only passed to ssh when set, so an ssh_config Port for an alias still applies. */
    port?: number;
    user: string;
    identityFile?: string;
    proxyJump?: string;
    /** A pinned public host key ("ssh-ed25519 AAAA…"): only this key is accepted. */
    hostKey?: string;
    knownHostsFile?: string;
    sshConfigFile?: string;
    /** Extra `Key=Value` ssh options. */
    sshOptions?: string[];
    /** Disables host-key checking. Loudly warned about; never the default. */
    insecureSkipHostKeyCheck?: boolean;
    /** Seconds to wait for the TCP connection and the SSH banner. */
    connectTimeout?: number;
}

/**
 * Whether a host's name can name its files in the runtime directory (control socket, pinned
 * known_hosts, generated ssh_config): nothing that could leave the directory or need quoting.
 */
export function namesFiles(name: string): boolean {
    return /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/.test(name) && !name.includes("..");
}

export const NAMES_FILES_RULE = "letters, digits, '_', '.' and '-' (no '..'), starting with a letter, digit or '_', at most 63 characters";

/** user@address, as ssh and Nix store URIs want it. */
export function destination(target: SshTarget): string {
    return `${target.user}@${target.address}`;
}

/** The alias under which a pinned host key is stored and checked, whatever the address resolves to. */
export function hostKeyAlias(target: SshTarget): string {
    return `nixos-fleet-${target.name}`;
}
