// Waiting for a host: its sshd answers with an SSH banner, or its process died (then the log says why).
import * as fs from "node:fs";
import * as net from "node:net";

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves true once 127.0.0.1:port sends "SSH-", false on refusal or timeout of one try. */
export function sshBanner(port: number, timeoutMs = 1000): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = net.connect({ host: "127.0.0.1", port });
        const done = (ok: boolean): void => {
            socket.destroy();
            resolve(ok);
        };
        socket.setTimeout(timeoutMs, () => done(false));
        socket.once("error", () => done(false));
        socket.once("data", (data) => done(data.toString("latin1").startsWith("SSH-")));
    });
}

/** True if something accepts TCP connections on 127.0.0.1:port. */
export function isListening(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = net.connect({ host: "127.0.0.1", port });
        socket.setTimeout(200, () => { socket.destroy(); resolve(true); });
        socket.once("connect", () => { socket.destroy(); resolve(true); });
        socket.once("error", () => { socket.destroy(); resolve(false); });
    });
}

/** Alive = exists and not a zombie (read from /proc, no process started). */
export function isAlive(pid: number): boolean {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
        return state !== "Z" && state !== "X";
    } catch {
        return false;
    }
}

function logTail(logFile: string, lines = 15): string {
    try {
        return fs.readFileSync(logFile, "utf8").trim().split("\n").slice(-lines).join("\n");
    } catch {
        return "(no log)";
    }
}

export async function waitForHost(name: string, pid: number, port: number, logFile: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let delay = 20; ; delay = Math.min(delay * 2, 200)) {
        if (await sshBanner(port)) return;
        if (!isAlive(pid)) throw new Error(`host ${name} exited during start; ${logFile}:\n${logTail(logFile)}`);
        if (Date.now() > deadline) throw new Error(`host ${name} did not answer on 127.0.0.1:${port} within ${timeoutMs} ms; ${logFile}:\n${logTail(logFile)}`);
        await sleep(delay);
    }
}

/** Runs `work` over the items with at most `limit` at a time; rejects with the first error after all settle. */
export async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
    const queue = [...items];
    const errors: unknown[] = [];
    const worker = async (): Promise<void> => {
        for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
            try {
                await work(item);
            } catch (error) {
                errors.push(error);
            }
        }
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new Error(errors.map((e) => (e instanceof Error ? e.message : String(e))).join("\n"));
}
