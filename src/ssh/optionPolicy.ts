// Which `-o Key=Value` ssh options a host may add. ssh options can run commands (ProxyCommand,
// LocalCommand, KnownHostsCommand), load code (PKCS11Provider), trust other keys
// (GlobalKnownHostsFile, UpdateHostKeys, VerifyHostKeyDNS) or turn checking off
// (StrictHostKeyChecking=no): a host file in a repository must not be able to do any of that.
// So options are an allow-list of harmless transport settings, each with a strict value rule;
// everything else is refused with the field or setting to use instead. The config layer
// (sshRules.ts) and the ssh layer (connection.ts) both apply it.

/** Why an option is refused, and what to use instead. */
export interface OptionRefusal {
    message: string;
    hint: string;
}

const YES_NO = /^(yes|no)$/i;
const ALGORITHMS = /^[+^-]?[A-Za-z0-9@._-]+(,[A-Za-z0-9@._-]+)*$/;

function integer(min: number, max: number): (value: string) => boolean {
    return (value) => /^\d{1,9}$/.test(value) && Number(value) >= min && Number(value) <= max;
}

function pattern(regex: RegExp): (value: string) => boolean {
    return (value) => regex.test(value);
}

interface AllowedOption {
    /** How OpenSSH spells it (for messages and docs). */
    name: string;
    /** What values are accepted, for people. */
    values: string;
    accepts: (value: string) => boolean;
}

const IPQOS = /^(af[1-4][1-3]|cs[0-7]|ef|le|lowdelay|throughput|reliability|none|\d{1,3})$/i;

/** The allow-list, by lower-case name (ssh option names are case-insensitive). */
export const ALLOWED_SSH_OPTIONS: Readonly<Record<string, AllowedOption>> = Object.fromEntries(
    (
        [
            { name: "ServerAliveInterval", values: "seconds, 0-86400", accepts: integer(0, 86_400) },
            { name: "ServerAliveCountMax", values: "a count, 0-1000", accepts: integer(0, 1000) },
            { name: "TCPKeepAlive", values: "yes or no", accepts: pattern(YES_NO) },
            { name: "Compression", values: "yes or no", accepts: pattern(YES_NO) },
            { name: "ConnectionAttempts", values: "a count, 1-100", accepts: integer(1, 100) },
            { name: "Ciphers", values: "an algorithm list", accepts: pattern(ALGORITHMS) },
            { name: "MACs", values: "an algorithm list", accepts: pattern(ALGORITHMS) },
            { name: "KexAlgorithms", values: "an algorithm list", accepts: pattern(ALGORITHMS) },
            { name: "HostKeyAlgorithms", values: "an algorithm list", accepts: pattern(ALGORITHMS) },
            { name: "PubkeyAcceptedAlgorithms", values: "an algorithm list", accepts: pattern(ALGORITHMS) },
            { name: "PubkeyAcceptedKeyTypes", values: "an algorithm list", accepts: pattern(ALGORITHMS) },
            { name: "CASignatureAlgorithms", values: "an algorithm list", accepts: pattern(ALGORITHMS) },
            { name: "PreferredAuthentications", values: "a list of methods", accepts: pattern(/^[a-z-]+(,[a-z-]+)*$/i) },
            { name: "RequiredRSASize", values: "bits, 1024-16384", accepts: integer(1024, 16_384) },
            { name: "IPQoS", values: "one DSCP class: af11-af43, cs0-cs7, ef, le, lowdelay, throughput, reliability, none", accepts: pattern(IPQOS) },
            { name: "AddressFamily", values: "any, inet or inet6", accepts: pattern(/^(any|inet|inet6)$/i) },
            { name: "RekeyLimit", values: "an amount like 1G, or default", accepts: pattern(/^(\d{1,12}[KMG]?|default)$/i) },
            { name: "LogLevel", values: "QUIET, FATAL, ERROR, INFO, VERBOSE or DEBUG1-3", accepts: pattern(/^(quiet|fatal|error|info|verbose|debug[123]?)$/i) },
            // Already what nixos-fleet sets; accepted so that spelling it out is not an error.
            { name: "StrictHostKeyChecking", values: "yes (turning it off is insecureSkipHostKeyCheck: true)", accepts: pattern(/^yes$/i) },
            { name: "BatchMode", values: "yes", accepts: pattern(/^yes$/i) },
        ] satisfies AllowedOption[]
    ).map((option) => [option.name.toLowerCase(), option]),
);

const HOST_KEY_HINT = "pin the host's key with hostKey or point knownHostsFile at a known_hosts file that has it";
const INSECURE_HINT = `${HOST_KEY_HINT}; to turn checking off, set insecureSkipHostKeyCheck: true (and accept the risk)`;
const RUNS_COMMAND = "runs a local command, which host files may not do";

/** Options refused with a specific reason and alternative, by lower-case name. */
const REFUSED: Readonly<Record<string, OptionRefusal>> = {
    // Fields of their own.
    hostname: { message: "duplicates a host field", hint: 'set "address" instead' },
    port: { message: "duplicates a host field", hint: 'set "port" instead' },
    user: { message: "duplicates a host field", hint: 'set "user" instead' },
    identityfile: { message: "duplicates a host field", hint: 'set "identityFile" instead' },
    proxyjump: { message: "duplicates a host field", hint: 'set "proxyJump" instead' },
    connecttimeout: { message: "duplicates a host field", hint: 'set "connectTimeout" instead' },
    userknownhostsfile: { message: "replaces the known host keys", hint: `set "knownHostsFile" instead (${HOST_KEY_HINT})` },
    // Running commands or loading code.
    proxycommand: { message: RUNS_COMMAND, hint: 'use proxyJump for jump hosts ("[user@]host[:port],...")' },
    proxyusefdpass: { message: "belongs to ProxyCommand, which host files may not use", hint: "use proxyJump for jump hosts" },
    localcommand: { message: RUNS_COMMAND, hint: "run commands on the host with hooks or healthChecks; nothing runs locally" },
    permitlocalcommand: { message: "allows LocalCommand, which runs a local command", hint: "run commands on the host with hooks or healthChecks" },
    remotecommand: { message: "replaces the commands nixos-fleet runs on the host", hint: "use hooks for commands on the host" },
    knownhostscommand: { message: `${RUNS_COMMAND} to find host keys`, hint: HOST_KEY_HINT },
    pkcs11provider: { message: "loads a shared library into ssh", hint: "use identityFile, or an ssh-agent that holds the token's key" },
    securitykeyprovider: { message: "loads a shared library into ssh", hint: "use identityFile, or an ssh-agent that holds the key" },
    identityagent: { message: "points ssh at another agent", hint: "use identityFile, or set SSH_AUTH_SOCK for the deploying user" },
    // Trusting other keys or checking less.
    stricthostkeychecking: { message: "would weaken host-key checking", hint: INSECURE_HINT },
    globalknownhostsfile: { message: "adds a source of trusted host keys", hint: HOST_KEY_HINT },
    hostkeyalias: { message: "changes which known_hosts entry is checked", hint: HOST_KEY_HINT },
    checkhostip: { message: "changes how host keys are checked", hint: HOST_KEY_HINT },
    updatehostkeys: { message: "lets the server add trusted host keys", hint: HOST_KEY_HINT },
    verifyhostkeydns: { message: "trusts host keys from DNS", hint: HOST_KEY_HINT },
    hashknownhosts: { message: "rewrites known_hosts files", hint: HOST_KEY_HINT },
    nohostauthenticationforlocalhost: { message: "turns host-key checking off for localhost", hint: INSECURE_HINT },
    batchmode: { message: "would let ssh prompt (and hang) during a deploy", hint: "remove it; nixos-fleet always runs ssh with BatchMode=yes" },
    // ssh_config structure and our own master connection.
    match: { message: "is an ssh_config block, not an option", hint: "use sshConfigFile for ssh_config blocks" },
    host: { message: "is an ssh_config block, not an option", hint: "use sshConfigFile for ssh_config blocks" },
    include: { message: "reads another ssh_config", hint: "use sshConfigFile" },
    controlpath: { message: "interferes with nixos-fleet's own master connection", hint: "remove it; nixos-fleet manages the control socket" },
    controlmaster: { message: "interferes with nixos-fleet's own master connection", hint: "remove it; nixos-fleet manages the control socket" },
    controlpersist: { message: "interferes with nixos-fleet's own master connection", hint: "remove it; nixos-fleet manages the control socket" },
    // Exposing the deployer.
    forwardagent: { message: "exposes your ssh-agent to the host", hint: "remove it; deploys need no agent forwarding" },
    sendenv: { message: "sends local environment variables (and any secrets in them) to the host", hint: "remove it" },
    setenv: { message: "sets environment variables for commands on the host", hint: "remove it" },
};

const OPTION_SYNTAX = /^([A-Za-z][A-Za-z0-9]*)=([\x21-\x7e]+)$/;
/** The option name in the other spellings ssh accepts: leading -o, quotes or whitespace, then the name. */
const LOOSE_NAME = /^[\s"']*(?:-+o\s*|-+)?["']?([A-Za-z][A-Za-z0-9]*)/;

/** Lower-case option name of a `Key=Value` string, or undefined when it is not one. */
export function sshOptionName(option: string): string | undefined {
    return OPTION_SYNTAX.exec(option)?.[1]?.toLowerCase();
}

/**
 * Why `option` ("Key=Value", exactly that form) may not be passed to ssh, or undefined when it is
 * on the allow-list with an accepted value. Names are matched case-insensitively, as ssh does.
 */
export function sshOptionRefusal(option: string): OptionRefusal | undefined {
    const match = OPTION_SYNTAX.exec(option);
    if (!match) {
        // ssh also reads "Key Value", "Key = Value" and -oKey=Value: name a refused option anyway.
        const refused = REFUSED[LOOSE_NAME.exec(option)?.[1]?.toLowerCase() ?? ""];
        const syntax = 'write one option per entry as "Key=Value" (ASCII, no spaces, no quotes), e.g. "ServerAliveInterval=15"';
        return refused ? { message: refused.message, hint: refused.hint } : { message: "is not a single Key=Value ssh option", hint: syntax };
    }
    const [, key = "", value = ""] = match;
    const allowed = ALLOWED_SSH_OPTIONS[key.toLowerCase()];
    if (allowed?.accepts(value)) return undefined;
    const refused = REFUSED[key.toLowerCase()];
    if (refused) return refused;
    if (allowed) return { message: `has a value ${allowed.name} does not accept here`, hint: `${allowed.name} takes ${allowed.values}` };
    return { message: "is not on the list of allowed ssh options", hint: `allowed: ${allowedOptionNames().join(", ")} (see docs/host-config.md, "sshOptions")` };
}

export function allowedOptionNames(): string[] {
    return Object.values(ALLOWED_SSH_OPTIONS).map((option) => option.name);
}

/** ssh_config directives that run a command or load code, which an sshConfigFile may not contain. */
const CONFIG_FILE_REFUSED: Readonly<Record<string, string>> = {
    proxycommand: "use proxyJump (or a Host alias with ProxyJump)",
    proxyusefdpass: "use proxyJump",
    localcommand: "remove it; nothing runs locally",
    permitlocalcommand: "remove it; nothing runs locally",
    remotecommand: "use hooks for commands on the host",
    knownhostscommand: "use knownHostsFile or hostKey",
    pkcs11provider: "use identityFile, or an ssh-agent that holds the key",
    securitykeyprovider: "use identityFile, or an ssh-agent that holds the key",
    include: "put everything the hosts need into this one file",
    // Run for X11 forwarding.
    xauthlocation: "remove it; nothing runs locally",
};

/**
 * The words of an ssh_config line as ssh finds its keyword: ssh splits on whitespace, '=' and
 * quotes and skips an empty first word, so `=ProxyCommand …`, `""ProxyCommand …` and
 * `"ProxyCommand"…` are all ProxyCommand. Quotes become separators here (a line that ssh reads
 * differently is at worst refused, never let through).
 */
function configWords(line: string): string[] {
    return line.split(/["=\s]+/).filter(Boolean);
}

export interface ConfigFileRefusal extends OptionRefusal {
    /** 1-based line in the file. */
    line: number;
}

/**
 * What an sshConfigFile (a file in the repository, like the host files) may not do: run commands
 * (ProxyCommand, LocalCommand, KnownHostsCommand, Match exec, ...), load libraries, or pull in
 * files nobody reviewed (Include). Everything else (HostName, Port, IdentityFile,
 * UserKnownHostsFile, ...) is its purpose.
 */
export function sshConfigRefusals(text: string): ConfigFileRefusal[] {
    const refusals: ConfigFileRefusal[] = [];
    text.split(/\r?\n/).forEach((raw, index) => {
        const [word, ...args] = configWords(raw);
        if (word === undefined || word.startsWith("#")) return;
        const keyword = word.toLowerCase();
        const hint = CONFIG_FILE_REFUSED[keyword];
        if (hint) refusals.push({ line: index + 1, message: `${word} runs a command, loads code or reads other files`, hint });
        else if (keyword === "match" && args.some((arg) => /^!?exec$/i.test(arg))) {
            refusals.push({ line: index + 1, message: "Match exec runs a command", hint: "match on host, user or originalhost instead" });
        }
    });
    return refusals;
}
