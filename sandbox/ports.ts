// Port allocation: two 127.0.0.1 ports per host (sshd, web.service), recorded in <dir>/ports.json so a host keeps it
// across restarts. A machine-wide claim file per port (in the OS temp dir) keeps two sandbox
// dirs from picking the same port while one of them is stopped.
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
 * Gives every name a port: its recorded one, or the first free, unclaimed port from `base`.
 * Returns the full map (also written to `file`).
 */
export async function allocatePorts(file: string, sandboxDir: string, names: readonly string[], base: number): Promise<PortMap> {
    const ports = readPorts(file);
    const used = new Set(Object.values(ports));
    let candidate = base;
    for (const name of names) {
        if (ports[name] !== undefined) {
            claimPort(ports[name], sandboxDir);
            continue;
        }
        for (;; candidate++) {
            if (candidate >= base + PORT_SEARCH_SPAN || candidate > 65535) {
                throw new Error(`no free port for host ${name} in ${base}..${base + PORT_SEARCH_SPAN - 1}`);
            }
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
