// When the engine that started this plugin dies outright (`kill -9` of pulumi, the OOM killer),
// nobody reads the plugin's answers any more, and nothing would ever stop it: it stayed running
// under init. It now notices that its parent changed, cancels as the engine would at Ctrl-C (hosts
// under way finish, a reboot's wait ends at once; no new call can come), and exits once no call
// is under way. It writes nothing then: its output went to the engine. What the hosts then run is recorded by nobody: the command that started pulumi
// reports them as unknown and says to refresh.
export interface OrphanWatch {
    /** The plugin's parent when it started (the engine). */
    parentPid: number;
    /** The plugin's parent now. */
    currentParent?: () => number;
    /** The plugin's cancel (as the engine's Ctrl-C). */
    cancel: () => Promise<void>;
    /** The engine's calls under way. */
    callsUnderWay: () => number;
    exit?: (code: number) => void;
    /** Makes writes to the dead engine's pipes fail quietly (default: an error handler on stdout and stderr). */
    silenceOutput?: () => void;
    intervalMs?: number;
}

/** Looks for the parent's death every intervalMs (1 s); returns what stops the watch. */
export function exitWhenOrphaned(watch: OrphanWatch): () => void {
    const currentParent = watch.currentParent ?? (() => process.ppid);
    const exit = watch.exit ?? ((code: number) => process.exit(code));
    watch.silenceOutput ??= () => {
        for (const stream of [process.stdout, process.stderr]) stream.on("error", () => undefined);
    };
    let orphaned = false;
    const timer = setInterval(() => {
        if (!orphaned) {
            if (currentParent() === watch.parentPid) return;
            orphaned = true;
            // Nobody reads our output any more: a write to the engine's pipe fails (EPIPE), and the
            // SDK reports an uncaught error on stderr, which fails again, without end (a process
            // spinning at full CPU, seen when pulumi was killed). Those errors are dropped.
            watch.silenceOutput?.();
            void watch.cancel().catch(() => undefined);
        }
        if (watch.callsUnderWay() === 0) {
            clearInterval(timer);
            exit(0);
        }
    }, watch.intervalMs ?? 1000);
    timer.unref();
    return () => clearInterval(timer);
}
