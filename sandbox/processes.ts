// Finding and ending a host's processes. A host is an `unshare` process and, below it, its
// namespace's pid 1 (init.sh, then sshd). Both carry the host's state dir in their arguments
// (sshd through the /run/sandbox/mnt<dir> mirror), so a host is found even without a pid file,
// e.g. after a crash. `unshare --fork` ignores SIGTERM and a zombie still answers kill -0:
// hosts are stopped with SIGKILL and liveness is read from `ps` (state Z = dead).
import { ProcessRunner, runChecked } from "../src/process/runner";

export interface ProcessInfo {
    pid: number;
    ppid: number;
    stat: string;
    args: string;
}

export async function listProcesses(runner: ProcessRunner): Promise<ProcessInfo[]> {
    const result = await runChecked(runner, ["ps", "-e", "-ww", "-o", "pid=,ppid=,stat=,args="]);
    const processes: ProcessInfo[] = [];
    for (const line of result.stdout.split("\n")) {
        const match = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line);
        if (match) processes.push({ pid: Number(match[1]), ppid: Number(match[2]), stat: match[3]!, args: match[4]! });
    }
    return processes;
}

/** Live (non-zombie) processes of the host whose state dir is `hostDir`. */
export function hostProcesses(all: readonly ProcessInfo[], hostDir: string): ProcessInfo[] {
    // Exactly the arguments start gives them (not any process that mentions the dir).
    const markers = [`/init.sh ${hostDir} `, ` -f /run/sandbox/mnt${hostDir}/sshd_config`];
    const own = all.filter((p) => !p.stat.startsWith("Z") && markers.some((m) => p.args.includes(m)));
    // Children of the unshare process too (covers init.sh before it has exec'd sshd).
    const ownPids = new Set(own.map((p) => p.pid));
    const children = all.filter((p) => !p.stat.startsWith("Z") && ownPids.has(p.ppid) && !ownPids.has(p.pid));
    return [...own, ...children];
}

/** SIGKILLs the pids, ignoring ones already gone. */
export function killAll(pids: readonly number[]): void {
    for (const pid of pids) {
        try {
            process.kill(pid, "SIGKILL");
        } catch {
            // already gone
        }
    }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
