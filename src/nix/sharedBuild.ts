// One build for the hosts updated together: the engine updates hosts in parallel, and separate
// `nix-store --realise` runs of systems that share derivations wait on each other's build locks
// (Nix polls a held lock every few seconds). The provider hands every host's build to one
// SharedBuilder: requests that arrive together are realised by ONE `nix-store --realise` of all
// their derivations, and each host goes on when that build is done. When the shared build fails,
// each host builds its own system again, so each gets its own error (or goes on when it was
// another host's system that failed).
import type { ProcessRunner } from "../process/runner";
import { buildLocally } from "./build";

interface Request {
    drvPath: string;
    host: string;
    resolve: (result: SharedBuildResult) => void;
    reject: (error: unknown) => void;
}

export interface SharedBuildResult {
    /** The hosts whose systems were realised in the same `nix-store --realise` (this one included). */
    hosts: string[];
}

export interface SharedBuilderOptions {
    /** How long the builder waits for more requests after the last one (ms). */
    quietMs?: number;
    /** The longest the first request waits before its build starts (ms). */
    maxWaitMs?: number;
}

export class SharedBuilder {
    private pending: Request[] = [];
    private quietTimer?: NodeJS.Timeout;
    private maxTimer?: NodeJS.Timeout;
    private readonly quietMs: number;
    private readonly maxWaitMs: number;

    constructor(
        private readonly runner: ProcessRunner,
        options: SharedBuilderOptions = {},
    ) {
        this.quietMs = options.quietMs ?? 50;
        this.maxWaitMs = options.maxWaitMs ?? 500;
    }

    /** Realises drvPath for host, together with whatever other hosts ask for at the same time. */
    build(drvPath: string, host: string): Promise<SharedBuildResult> {
        return new Promise((resolve, reject) => {
            this.pending.push({ drvPath, host, resolve, reject });
            if (this.quietTimer) clearTimeout(this.quietTimer);
            this.quietTimer = setTimeout(() => void this.flush(), this.quietMs);
            this.maxTimer ??= setTimeout(() => void this.flush(), this.maxWaitMs);
        });
    }

    private async flush(): Promise<void> {
        clearTimeout(this.quietTimer);
        clearTimeout(this.maxTimer);
        this.quietTimer = undefined;
        this.maxTimer = undefined;
        const batch = this.pending;
        this.pending = [];
        if (batch.length === 0) return;
        const hosts = batch.map((request) => request.host);
        const drvs = [...new Set(batch.map((request) => request.drvPath))];
        if (drvs.length === 1) {
            // One system (usually one host): the plain build.
            const built = buildLocally(this.runner, drvs[0]!, batch[0]!.host);
            await built.then(
                () => batch.forEach((request) => request.resolve({ hosts })),
                (error: unknown) => batch.forEach((request) => request.reject(error)),
            );
            return;
        }
        // --keep-going: every system that can be built is, even when another one fails.
        const shared = await this.runner(["nix-store", "--realise", "--keep-going", ...drvs]).catch(() => undefined);
        if (shared?.code === 0) {
            for (const request of batch) request.resolve({ hosts });
            return;
        }
        // The shared build failed: each host builds its own system again, which is quick for what
        // the shared build realised, and fails with its own error when its system is the broken one.
        await Promise.all(
            batch.map((request) =>
                buildLocally(this.runner, request.drvPath, request.host).then(() => request.resolve({ hosts: [request.host] }), request.reject),
            ),
        );
    }
}
