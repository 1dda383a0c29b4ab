// The nixos:index:Hook provider: a command run on a host after it was deployed (e.g. a database
// migration). It re-runs whenever its trigger (the host's generation and system) changes, and not on
// a no-op `up`. A failing hook fails the update but does not roll the system back: that is what
// health checks are for. (Served by our own provider because @pulumi/command's plugin cannot be
// built on this project's machines; see docs/design-notes.md.)
import type * as provider from "@pulumi/pulumi/provider";
import { z } from "zod";
import { FleetError, formatError, tail } from "../errors";
import type { ProcessRunner } from "../process/runner";
import { SshConnection } from "../ssh/connection";
import type { EngineLogger } from "./engineLog";
import { hostInputsSchema, sshTargetOf, type HostInputs } from "./hostInputs";
import { checkFailures, unknownKeys } from "./unknowns";

export const HOOK_TYPE = "nixos:index:Hook";

const connectionShape = hostInputsSchema.pick({
    name: true,
    address: true,
    port: true,
    user: true,
    identityFile: true,
    proxyJump: true,
    hostKey: true,
    knownHostsFile: true,
    sshConfigFile: true,
    sshOptions: true,
    insecureSkipHostKeyCheck: true,
    connectTimeout: true,
}).shape;

export const hookInputsSchema = z.object({
    ...connectionShape,
    hook: z.string().min(1),
    command: z.array(z.string()).min(1),
    runAs: z.string().optional(),
    /** The host's generation and system: a change re-runs the hook. */
    trigger: z.string(),
    timeoutSeconds: z.number().positive().optional(),
});

export type HookInputs = z.infer<typeof hookInputsSchema>;

export const hookOutputFieldsSchema = z.object({
    ranAt: z.string(),
    /** The end of the hook's output, for the record. */
    output: z.string(),
});

export type HookOutputs = HookInputs & z.infer<typeof hookOutputFieldsSchema>;

export interface HookProviderOptions {
    runner: ProcessRunner;
    logger: EngineLogger;
    runtimeDir: () => string;
}

export function hookArgv(inputs: Pick<HookInputs, "command" | "runAs">): string[] {
    return inputs.runAs ? ["sudo", "-n", "-u", inputs.runAs, "--", ...inputs.command] : [...inputs.command];
}

export class HookProvider {
    constructor(private readonly options: HookProviderOptions) {}

    async check(news: Record<string, unknown>): Promise<provider.CheckResult> {
        const parsed = hookInputsSchema.safeParse(news);
        if (parsed.success) return { inputs: news };
        // The host's connection may come from resources not created yet: checked once known.
        const failures = checkFailures(parsed.error.issues, unknownKeys(news));
        return failures.length > 0 ? { failures } : { inputs: news };
    }

    async diff(olds: Record<string, unknown>, news: Record<string, unknown>): Promise<provider.DiffResult> {
        const keys = Object.keys(hookInputsSchema.shape);
        const changed = keys.some((key) => JSON.stringify(olds[key] ?? null) !== JSON.stringify(news[key] ?? null));
        return { changes: changed, replaces: [], deleteBeforeReplace: false };
    }

    private async run(urn: string, news: Record<string, unknown>): Promise<HookOutputs> {
        const inputs = hookInputsSchema.parse(news);
        const target = sshTargetOf(inputs as unknown as HostInputs);
        const connection = new SshConnection(target, { runner: this.options.runner, runtimeDir: this.options.runtimeDir() });
        await this.options.logger.log("info", urn, `${inputs.name}: hook ${inputs.hook}: ${inputs.command.join(" ")}`, true);
        try {
            const result = await connection.run(hookArgv(inputs), { timeoutMs: (inputs.timeoutSeconds ?? 600) * 1000 });
            const output = tail(`${result.stdout}${result.stderr}`, 20);
            if (result.code !== 0) {
                throw new FleetError({
                    phase: "hook",
                    host: inputs.name,
                    message: `hook ${inputs.hook} ${result.timedOut ? "did not finish in time" : `exited with ${result.code ?? result.signal}`}; the system stays deployed (hooks do not roll back)`,
                    hint: "fix the hook or what it runs against; the next `pulumi up` runs it again",
                    detail: output,
                });
            }
            return { ...inputs, ranAt: new Date().toISOString(), output };
        } catch (error) {
            throw new Error(formatError(error));
        } finally {
            await connection.close().catch(() => undefined);
        }
    }

    async create(urn: string, news: Record<string, unknown>): Promise<provider.CreateResult> {
        const outs = await this.run(urn, news);
        return { id: `${outs.name}/${outs.hook}`, outs };
    }

    async update(urn: string, news: Record<string, unknown>): Promise<provider.UpdateResult> {
        return { outs: await this.run(urn, news) };
    }
}
