// The plugin answers the engine before it loads the Host resource's code. The engine starts the
// plugin when the program first asks for it (resources/providerStart.ts), then waits for its port
// while the program loads and evaluates the fleet; the input rules (zod), the deploy phases and
// the plan are ~0.1 s of loading that the port need not wait for. The version and
// nixos:index:providerInfo need none of it. The load starts once providerInfo is answered (the
// program's first call, made before it evaluates the fleet), or with the first other call; every
// call waits for that one load.
//
// providerInfo also says whether the run is a preview or an update, which a Host's check and diff
// need. The program asks it before it registers any Host, but the engine forwards the two on
// their own: a check can come first by a few milliseconds. It then waits for providerInfo, up to
// `runKindWaitMs` once per run; a run whose program never asks (`pulumi import`, another program)
// goes on after that as a run of unknown kind.
import type * as provider from "@pulumi/pulumi/provider";
import { PROVIDER_INFO_TOKEN, type ProviderInfo } from "./providerInfo";

export class DeferredProvider implements provider.Provider {
    readonly version: string;
    private readonly load: () => Promise<provider.Provider>;
    private loaded?: Promise<provider.Provider>;
    /** The engine cancelled the update (its first Ctrl-C) before the provider was loaded. */
    private cancelled = false;
    /** The program's nixos:index:providerInfo arguments (the run's kind), handed to the provider as it loads. */
    private info?: unknown;
    /** Resolves once the provider has heard providerInfo (or it was loaded after it came). */
    private readonly infoHeard: Promise<void>;
    private heardInfo!: () => void;
    /** A check or diff's wait for providerInfo (once per run). */
    private infoWait?: Promise<void>;
    private readonly runKindWaitMs: number;
    /** Calls of the engine under way (orphan.ts waits for them before the plugin exits). */
    private calls = 0;

    /** runKindWaitMs: how long a Host's check or diff waits for providerInfo when it comes first (0: not at all). */
    constructor(version: string, load: () => Promise<provider.Provider>, options: { runKindWaitMs?: number } = {}) {
        this.version = version;
        this.load = load;
        this.runKindWaitMs = options.runKindWaitMs ?? 0;
        this.infoHeard = new Promise((resolve) => (this.heardInfo = resolve));
    }

    /** Waits until the provider knows the run's kind, for at most runKindWaitMs (in all, once per run). */
    private runKindKnown(): Promise<void> {
        if (this.info !== undefined) return this.infoHeard;
        if (this.runKindWaitMs <= 0) return Promise.resolve();
        this.infoWait ??= new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, this.runKindWaitMs);
            timer.unref();
            void this.infoHeard.then(() => {
                clearTimeout(timer);
                resolve();
            });
        });
        return this.infoWait;
    }

    /** How many of the engine's calls are under way. */
    get callsUnderWay(): number {
        return this.calls;
    }

    /** Runs one of the engine's calls, counted while it is under way. */
    private async counted<T>(call: () => Promise<T>): Promise<T> {
        this.calls += 1;
        try {
            return await call();
        } finally {
            this.calls -= 1;
        }
    }

    /** The provider itself, loaded on first use (once). */
    private target(): Promise<provider.Provider> {
        this.loaded ??= this.load().then(
            async (target) => {
                // A cancel that came first still holds for what runs now (a reboot's wait ends at once).
                if (this.cancelled) await target.cancel?.call(target);
                // So does what the program said of the run (a preview or an update).
                if (this.info !== undefined) await target.invoke?.call(target, PROVIDER_INFO_TOKEN, this.info);
                return target;
            },
            (error: unknown) => {
                // Each call reports it (the plugin answered its start before it loaded this code).
                const why = error instanceof Error ? error.message : String(error);
                throw new Error(`the nixos provider ${this.version} could not load its Host code: ${why}; run \`npm run bootstrap\` (it rebuilds dist/)`, { cause: error });
            },
        );
        return this.loaded;
    }

    async invoke(token: string, inputs: unknown): Promise<provider.InvokeResult> {
        if (token === PROVIDER_INFO_TOKEN) {
            this.info = inputs ?? {};
            try {
                // Already loaded (a second call): the provider hears it at once.
                const loaded = this.loaded && (await this.loaded.catch(() => undefined));
                if (loaded) await loaded.invoke?.call(loaded, token, inputs);
                // The program asks this first, then reads and evaluates the fleet before its first
                // Host call: the load runs meanwhile, once this answer is out (and hands it on).
                else setImmediate(() => void this.target().catch(() => undefined));
            } finally {
                // Also when the provider failed to hear it: a check waiting for it must not wait forever.
                this.heardInfo();
            }
            return { outputs: { version: this.version } satisfies ProviderInfo };
        }
        const target = await this.target();
        return required(target.invoke, "invoke").call(target, token, inputs);
    }

    async getSchema(): Promise<string> {
        const target = await this.target();
        return required(target.getSchema, "getSchema").call(target);
    }

    async check(urn: string, olds: unknown, news: unknown): Promise<provider.CheckResult> {
        const [target] = await Promise.all([this.target(), this.runKindKnown()]);
        return required(target.check, "check").call(target, urn, olds, news);
    }

    async diff(id: string, urn: string, olds: unknown, news: unknown): Promise<provider.DiffResult> {
        const [target] = await Promise.all([this.target(), this.runKindKnown()]);
        return required(target.diff, "diff").call(target, id, urn, olds, news);
    }

    create(urn: string, inputs: unknown): Promise<provider.CreateResult> {
        return this.counted(async () => {
            const target = await this.target();
            return required(target.create, "create").call(target, urn, inputs);
        });
    }

    update(id: string, urn: string, olds: unknown, news: unknown): Promise<provider.UpdateResult> {
        return this.counted(async () => {
            const target = await this.target();
            return required(target.update, "update").call(target, id, urn, olds, news);
        });
    }

    read(id: string, urn: string, props?: unknown): Promise<provider.ReadResult> {
        return this.counted(async () => {
            const target = await this.target();
            return required(target.read, "read").call(target, id, urn, props);
        });
    }

    delete(id: string, urn: string, props: unknown): Promise<void> {
        return this.counted(async () => {
            const target = await this.target();
            return required(target.delete, "delete").call(target, id, urn, props);
        });
    }

    /**
     * Before the provider is loaded no deploy has started, but one may still start (a call already
     * on its way): the provider is cancelled as it loads. A provider that failed to load has
     * nothing to cancel (its calls report why).
     */
    async cancel(): Promise<void> {
        this.cancelled = true;
        if (!this.loaded) return;
        const target = await this.loaded.catch(() => undefined);
        await target?.cancel?.call(target);
    }
}

function required<F>(method: F | undefined, name: string): F {
    if (method === undefined) throw new Error(`the nixos provider has no ${name}`);
    return method;
}
