// Port allocation: two 127.0.0.1 ports per host (sshd, web.service), recorded in <dir>/ports.json so a host keeps it
// across restarts. A machine-wide claim file per port (in the OS temp dir) keeps two sandbox
// dirs from picking the same port while one of them is stopped. New ports never come from the
// kernel's ephemeral range: an outgoing connection (ssh from one host to another, nix copy) may
// take such a port as its source port between our check and the service's bind.
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

export const DEFAULT_PORT_BASE = 22200;
const PORT_SEARCH_SPAN = 2000;

/** Keys of ports.json: the host name for its sshd, `<name>.web` for its web.service. */
export type PortMap = Record<string, number>;

export function webPortKey(name: string): string {
    return `${name}.web`;
}

export function readPorts(file: string): PortMap {
    if (!fs.existsSync(file)) return {};
    return JSON.parse(fs.readFileSync(file, "utf8")) as PortMap;
}

export function writePorts(file: string, ports: PortMap): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(ports, null, 2) + "\n");
    fs.renameSync(`${file}.tmp`, file);
}

/** Ports the kernel hands out as source ports of outgoing connections (inclusive). */
export interface PortRange {
    low: number;
    high: number;
}

export const EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range";
/** Linux's default, used when the file cannot be read. */
export const DEFAULT_EPHEMERAL_RANGE: PortRange = { low: 32768, high: 60999 };

/** "32768\t60999" → { low, high }; undefined for anything else. */
export function parsePortRange(text: string): PortRange | undefined {
    const match = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
    if (!match) return undefined;
    const [low, high] = [Number(match[1]), Number(match[2])];
    return low >= 1 && low <= high && high <= 65535 ? { low, high } : undefined;
}

/** The kernel's ephemeral port range (its default when the file is missing or unreadable). */
export function ephemeralPortRange(file = EPHEMERAL_RANGE_FILE): PortRange {
    try {
        return parsePortRange(fs.readFileSync(file, "utf8")) ?? DEFAULT_EPHEMERAL_RANGE;
    } catch {
        return DEFAULT_EPHEMERAL_RANGE;
    }
}

export function inRange(port: number, range: PortRange): boolean {
    return port >= range.low && port <= range.high;
}

function rangeProblem(range: PortRange): string {
    return `the kernel's ephemeral port range ${range.low}..${range.high} (${EPHEMERAL_RANGE_FILE}), from which outgoing connections take their source ports`;
}

/**
 * The ports a search from `base` may try: base..base+PORT_SEARCH_SPAN-1, cut short where the
 * ephemeral range begins. A base inside the range is refused outright.
 */
export function searchWindow(base: number, range: PortRange): { first: number; last: number } {
    if (inRange(base, range)) {
        throw new Error(
            `sandbox port base ${base} lies in ${rangeProblem(range)}: a host's port there can be taken by an outgoing connection before its service binds it. ` +
                `Choose a base below ${range.low} (portBase, SANDBOX_PORT_BASE or --port-base), e.g. ${DEFAULT_PORT_BASE}`,
        );
    }
    let last = Math.min(base + PORT_SEARCH_SPAN - 1, 65535);
    if (base < range.low) last = Math.min(last, range.low - 1);
    return { first: base, last };
}

/** True when nothing listens on 127.0.0.1:port (we can bind it ourselves). */
export function isPortFree(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const server = net.createServer();
        server.once("error", () => resolve(false));
        server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve(true)));
    });
}

function claimsDir(): string {
    return path.join(os.tmpdir(), "nixos-fleet-sandbox-ports");
}

/** Claims a port for a sandbox dir; false if another live sandbox dir holds it. */
function claimPort(port: number, sandboxDir: string): boolean {
    fs.mkdirSync(claimsDir(), { recursive: true });
    const file = path.join(claimsDir(), String(port));
    try {
        fs.writeFileSync(file, sandboxDir, { flag: "wx" });
        return true;
    } catch {
        const owner = fs.readFileSync(file, "utf8");
        if (owner === sandboxDir) return true;
        // A claim is stale once its owner no longer records the port (destroyed or deleted dir).
        const ownerStillUses = Object.values(readPorts(path.join(owner, "ports.json"))).includes(port);
        if (ownerStillUses) return false;
        fs.writeFileSync(file, sandboxDir);
        return true;
    }
}

export function releasePort(port: number, sandboxDir: string): void {
    const file = path.join(claimsDir(), String(port));
    try {
        if (fs.readFileSync(file, "utf8") === sandboxDir) fs.unlinkSync(file);
    } catch {
        // no claim: nothing to release
    }
}

/**
 * Gives every name a port: its recorded one, or the first free, unclaimed port from `base`, never
 * one in the kernel's ephemeral range (`ephemeral`; read from /proc unless given). Returns the
 * full map (also written to `file`). Recorded ports are kept even if they lie in that range
 * (`portsInRange` names them; destroying the host gives it a new one).
 */
export async function allocatePorts(
    file: string,
    sandboxDir: string,
    names: readonly string[],
    base: number,
    ephemeral: PortRange = ephemeralPortRange(),
): Promise<PortMap> {
    const ports = readPorts(file);
    const used = new Set(Object.values(ports));
    const wanted = names.filter((name) => ports[name] === undefined);
    for (const name of names) if (ports[name] !== undefined) claimPort(ports[name], sandboxDir);
    if (wanted.length === 0) return ports;
    const window = searchWindow(base, ephemeral);
    let candidate = window.first;
    for (const name of wanted) {
        for (;; candidate++) {
            if (candidate > window.last) throw new Error(noRoomMessage(name, base, window.last, ephemeral));
            if (used.has(candidate)) continue;
            if (!(await isPortFree(candidate))) continue;
            if (!claimPort(candidate, sandboxDir)) continue;
            break;
        }
        ports[name] = candidate;
        used.add(candidate);
        writePorts(file, ports);
    }
    return ports;
}

function noRoomMessage(name: string, base: number, last: number, range: PortRange): string {
    const stoppedAtRange = last === range.low - 1 && base + PORT_SEARCH_SPAN - 1 > last;
    if (!stoppedAtRange) return `no free port for host ${name} in ${base}..${last}: choose another port base (portBase, SANDBOX_PORT_BASE or --port-base)`;
    return (
        `no free port for host ${name} in ${base}..${last}: the search stops below ${rangeProblem(range)}. ` +
        `Choose a lower port base (portBase, SANDBOX_PORT_BASE or --port-base) with room for two ports per host below ${range.low}`
    );
}

/** Entries of `ports` whose port lies in the ephemeral range (hosts created before this rule, or by hand). */
export function portsInRange(ports: PortMap, range: PortRange = ephemeralPortRange()): string[] {
    return Object.keys(ports).filter((key) => inRange(ports[key]!, range));
}
