// Peak memory of a process tree (P6): the sum of the resident sets of every descendant of a
// process (pulumi, its language host, the Node.js program, the provider), polled from /proc.
import { readdirSync, readFileSync } from "node:fs";

export interface ProcStat {
    pid: number;
    ppid: number;
    rssBytes: number;
}

/** Parses /proc/<pid>/stat (the command name may hold spaces and parentheses). */
export function parseProcStat(text: string, pageSize = 4096): ProcStat {
    const close = text.lastIndexOf(")");
    const pid = Number(text.slice(0, text.indexOf(" ")));
    const fields = text.slice(close + 2).trim().split(/\s+/); // fields[0] is the state (field 3)
    const ppid = Number(fields[1]);
    const rssPages = Number(fields[21]); // field 24
    if (!Number.isInteger(pid) || !Number.isInteger(ppid) || !Number.isFinite(rssPages)) throw new Error(`unreadable /proc stat: ${text.slice(0, 80)}`);
    return { pid, ppid, rssBytes: rssPages * pageSize };
}

/** Resident bytes of root's descendants (not root itself). */
export function descendantsRss(procs: readonly ProcStat[], root: number): number {
    const children = new Map<number, ProcStat[]>();
    for (const proc of procs) children.set(proc.ppid, [...(children.get(proc.ppid) ?? []), proc]);
    let total = 0;
    const stack = [...(children.get(root) ?? [])];
    while (stack.length > 0) {
        const proc = stack.pop()!;
        total += proc.rssBytes;
        stack.push(...(children.get(proc.pid) ?? []));
    }
    return total;
}

function readProcs(): ProcStat[] {
    const procs: ProcStat[] = [];
    for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            procs.push(parseProcStat(readFileSync(`/proc/${entry}/stat`, "utf8")));
        } catch {
            // exited while we looked
        }
    }
    return procs;
}

/** Runs work while polling this process's descendants; returns its result and the peak RSS in bytes. */
export async function withPeakRss<T>(work: () => Promise<T>, intervalMs = 100): Promise<{ result: T; peakBytes: number }> {
    let peak = 0;
    const poll = () => {
        peak = Math.max(peak, descendantsRss(readProcs(), process.pid));
    };
    const timer = setInterval(poll, intervalMs);
    try {
        const result = await work();
        return { result, peakBytes: peak };
    } finally {
        clearInterval(timer);
    }
}
