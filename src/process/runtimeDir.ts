// Private runtime directories (/tmp/nf-<pid>-XXXXXX): control sockets, pinned known_hosts files and
// generated ssh_configs live there while a provider or command runs. They are removed when the
// process exits: normally, after an error, or on SIGINT/SIGTERM/SIGHUP (how the Pulumi engine
// stops a provider). A process killed outright (SIGKILL) cannot clean up after itself, so the next
// one removes directories whose process is gone.
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const PREFIX = "nf-";
/** nf-<pid>-<mkdtemp's six characters> */
const NAME = /^nf-(\d+)-[A-Za-z0-9]{6}$/;
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

/** What the cleanup needs of a process (the real one, or a fake in tests). */
export interface ProcessLike {
    readonly pid: number;
    on(event: "exit", listener: () => void): unknown;
    once(event: keyof typeof SIGNALS, listener: () => void): unknown;
    listenerCount(event: keyof typeof SIGNALS): number;
    exit(code: number): never | void;
}

const live = new Set<string>();
const installed = new WeakSet<object>();

/** Removes every runtime directory this process made (synchronous: it runs in exit handlers). */
export function removeRuntimeDirs(): void {
    for (const dir of live) removeRuntimeDir(dir);
}

export function removeRuntimeDir(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
    live.delete(dir);
}

/**
 * Removes the directories on exit, and turns SIGINT/SIGTERM/SIGHUP into an exit (128 + signal) that
 * does, unless another handler of that signal is installed (the operator commands wait for the
 * engine on Ctrl-C to report every host): then the directories go and that handler decides.
 */
export function removeOnExit(proc: ProcessLike = process): void {
    if (installed.has(proc)) return;
    installed.add(proc);
    proc.on("exit", removeRuntimeDirs);
    for (const [signal, number] of Object.entries(SIGNALS) as [keyof typeof SIGNALS, number][]) {
        proc.once(signal, () => {
            removeRuntimeDirs();
            if (proc.listenerCount(signal) === 0) proc.exit(128 + number);
        });
    }
}

/** A new private (0700) runtime directory, short enough for socket paths, removed when the process exits. */
export function makeRuntimeDir(options: { parent?: string; proc?: ProcessLike } = {}): string {
    const proc = options.proc ?? process;
    removeOnExit(proc);
    const dir = mkdtempSync(join(options.parent ?? tmpdir(), `${PREFIX}${proc.pid}-`));
    live.add(dir);
    return dir;
}

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
    }
}

/** Removes runtime directories of ours whose process no longer runs (left by a SIGKILL). Returns them. */
export function sweepStaleRuntimeDirs(parent = tmpdir()): string[] {
    let names: string[];
    try {
        names = readdirSync(parent);
    } catch {
        return [];
    }
    return removeStale(parent, names);
}

/**
 * The same sweep without holding up a start: the listing of a crowded /tmp (tens of thousands of
 * entries on a busy machine) is read off the main thread; the provider serves the engine meanwhile.
 */
export async function sweepStaleRuntimeDirsInBackground(parent = tmpdir(), name: RegExp = NAME): Promise<string[]> {
    let names: string[];
    try {
        names = await readdir(parent);
    } catch {
        return [];
    }
    return removeStale(parent, names, name);
}

/**
 * Removes the runtime directories among `names` (entries of `parent`) whose process is gone: ours
 * (nf-<pid>-…), or those `pattern` names with the pid as its first group (cli/engineRun.ts's).
 */
function removeStale(parent: string, names: readonly string[], pattern: RegExp = NAME): string[] {
    const removed: string[] = [];
    const uid = process.getuid?.();
    for (const name of names) {
        const pid = pattern.exec(name)?.[1];
        if (pid === undefined || alive(Number(pid))) continue;
        const dir = join(parent, name);
        try {
            const stat = statSync(dir);
            if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid)) continue;
            rmSync(dir, { recursive: true, force: true });
            removed.push(dir);
        } catch {
            // gone already, or not ours to remove
        }
    }
    return removed;
}
