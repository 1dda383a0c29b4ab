// One build for the hosts updated together: the engine updates hosts in parallel, and separate
// `nix-store --realise` runs of systems that share derivations wait on each other's build locks
// (Nix polls a held lock every few seconds). The program tells every host which hosts this run
// evaluated (its build group); the provider tells its SharedBuilder, while it checks and diffs,
// which of them change and so need their systems built here (note). The first host that needs
// its system built waits until every host of its group was diffed (at most a few seconds), then
// starts ONE `nix-store --realise` of all those systems; every other host whose system is in it
// waits for that build instead of starting its own. When the shared build fails, each host builds
// its own system again, so each gets its own error (or goes on when another system was broken).
// A host whose deploy no longer needs its system (its handshake failed for good: deploy/
// earlyHandshake.ts) says so with an AbortSignal: its own build is stopped (SIGTERM, so Nix stops
// its builders and releases its locks); a shared build goes on while any of its systems is still
// wanted, and is stopped once none is.
import type { ProcessRunner } from "../process/runner";
import { buildLocally } from "./build";
import { FleetError } from "../errors";

export interface SharedBuildResult {
    /** How many systems the `nix-store --realise` that built this one realised (1: built alone). */
    systems: number;
}

interface Batch {
    drvs: string[];
    /** Resolves true when all of them were built, false when the shared build failed. */
    done: Promise<boolean>;
    /** Its systems whose hosts may still deploy them (every one until its host gives it up). */
    wanted: Set<string>;
    /** Stops the shared nix-store --realise (once nothing in it is wanted). */
    stop: AbortController;
}

export interface SharedBuilderOptions {
    /** The longest a build waits for the rest of its group to be diffed (ms). */
    maxWaitMs?: number;
}

export class SharedBuilder {
    /** Systems a coming update will build, not yet in a batch. */
    private readonly expected = new Set<string>();
    private readonly batches = new Map<string, Batch>();
    /** Hosts the engine has checked or diffed in this run. */
    private readonly seen = new Set<string>();
    private readonly waiting = new Set<() => void>();
    private readonly maxWaitMs: number;

    constructor(
        private readonly runner: ProcessRunner,
        options: SharedBuilderOptions = {},
    ) {
        this.maxWaitMs = options.maxWaitMs ?? 3000;
    }

    /** The engine diffed (or checked) host; drvPath when its update will build that system here. */
    note(host: string, drvPath?: string): void {
        this.seen.add(host);
        if (drvPath !== undefined && !this.batches.has(drvPath)) this.expected.add(drvPath);
        for (const wake of [...this.waiting]) wake();
    }

    /** Resolves when every host of the group was noted, or after maxWaitMs. */
    private groupNoted(group: readonly string[]): Promise<void> {
        return new Promise((resolve) => {
            const check = () => {
                if (!group.every((host) => this.seen.has(host))) return;
                finish();
            };
            const timer = setTimeout(() => finish(), this.maxWaitMs);
            const finish = () => {
                clearTimeout(timer);
                this.waiting.delete(check);
                resolve();
            };
            this.waiting.add(check);
            check();
        });
    }

    /**
     * Resolves once the engine has diffed every host of the group (or after maxWaitMs): until then
     * it diffs them one after another, and work that competes for the CPU (an update's plan, the
     * SSH handshakes) waits for this rather than slow it.
     */
    settled(group: readonly string[]): Promise<void> {
        return group.every((host) => this.seen.has(host)) ? Promise.resolve() : this.groupNoted(group);
    }

    /**
     * Realises drvPath for host: in the shared build that holds it, or in a new one with every
     * expected system of the run. `started` is called once the build starts or is joined.
     * `signal` aborts when the host no longer needs the system: its own build is stopped, a shared
     * one only once none of its systems is wanted any more.
     */
    async build(drvPath: string, host: string, group: readonly string[] = [], started?: () => void, signal?: AbortSignal): Promise<SharedBuildResult> {
        if (!this.batches.has(drvPath) && group.some((other) => other !== host && !this.seen.has(other))) await this.groupNoted(group);
        started?.();
        let batch = this.batches.get(drvPath);
        if (!batch) {
            const drvs = [drvPath, ...[...this.expected].filter((drv) => drv !== drvPath && !this.batches.has(drv))];
            if (drvs.length === 1) {
                // Only this system: the plain build, as a host deployed alone always had.
                this.expected.delete(drvPath);
                await buildLocally(this.runner, drvPath, host, signal);
                return { systems: 1 };
            }
            // --keep-going: every system that can be built is, even when another one fails.
            const stop = new AbortController();
            const done = this.runner(["nix-store", "--realise", "--keep-going", ...drvs], { signal: stop.signal, abortSignal: "SIGTERM" }).then(
                (result) => result.code === 0,
                () => false,
            );
            batch = { drvs, done, wanted: new Set(drvs), stop };
            for (const drv of drvs) {
                this.expected.delete(drv);
                this.batches.set(drv, batch);
            }
        }
        const joined = batch;
        const giveUp = (): void => {
            joined.wanted.delete(drvPath);
            if (joined.wanted.size === 0) joined.stop.abort();
        };
        if (signal?.aborted) giveUp();
        else signal?.addEventListener("abort", giveUp, { once: true });
        let built: boolean;
        try {
            built = await joined.done;
        } finally {
            signal?.removeEventListener("abort", giveUp);
        }
        if (built) return { systems: joined.drvs.length };
        if (signal?.aborted) throw new FleetError({ phase: "build", host, message: "the build was given up: the host's deploy had already ended", hint: "see the host's connect error" });
        // The shared build failed: this host builds its own system (quick for what the shared
        // build realised) and fails with its own error when its system is the broken one.
        await buildLocally(this.runner, drvPath, host, signal);
        return { systems: 1 };
    }
}
