// The nixos:index:Hook provider: a command run on a host after it was deployed (e.g. a database
// migration). It re-runs whenever its trigger (the host's generation and system) changes, and not on
// a no-op `up`. A failing hook fails the update but does not roll the system back: that is what
// health checks are for. (Served by our own provider because @pulumi/command's plugin cannot be
// built on this project's machines; see docs/design-notes.md.)
import type * as provider from "@pulumi/pulumi/provider";
import { z } from "zod";
import { didYouMean } from "../config/suggest";
import { FleetError, formatError, tail } from "../errors";
import type { ProcessRunner } from "../process/runner";
import { SshConnection } from "../ssh/connection";
import { maskingLogger, type EngineLogger } from "./engineLog";
import { maskSecrets, secretValue, unwrapSecrets, wrapSecrets } from "./secretMarkers";
import { hookSchema } from "../config/hooks";
import { CONNECTION_KEYS, hostInputsSchema, sshTargetOf, type HostInputs } from "./hostInputs";
import { checkFailures, unknownKeys } from "./unknowns";
import { HOOK_TYPE } from "../resources/types";

export { HOOK_TYPE } from "../resources/types";

/** The host's connection inputs (config/hostFields.ts says which fields they are). */
const connectionShape = hostInputsSchema.pick(Object.fromEntries(CONNECTION_KEYS.map((key) => [key, true])) as { [K in (typeof CONNECTION_KEYS)[number]]: true }).shape;

export const hookInputsSchema = z.object({
    ...connectionShape,
    // The host-file rules of a hook (config/hooks.ts): the inputs may come from another program.
    hook: hookSchema.shape.name,
    command: hookSchema.shape.command,
    runAs: hookSchema.shape.runAs,
    /** The host's generation and system: a change re-runs the hook. */
    trigger: z.string(),
    timeoutSeconds: z.number().positive().optional(),
});

export type HookInputs = z.infer<typeof hookInputsSchema>;

export const hookOutputFieldsSchema = z.object({
    ranAt: z.string(),
    /**
     * The end of the hook's output (HOOK_OUTPUT_LINES lines, HOOK_OUTPUT_CHARS characters), for the
     * record. A hook may print secrets, so it is always recorded as a secret (encrypted, `[secret]`).
     */
    output: z.string(),
});

export type HookOutputs = HookInputs & z.infer<typeof hookOutputFieldsSchema>;

export const HOOK_OUTPUT_LINES = 20;
export const HOOK_OUTPUT_CHARS = 2000;

/** The recorded end of a hook's output: its last lines, and at most HOOK_OUTPUT_CHARS characters. */
export function hookOutputRecord(text: string): string {
    const end = tail(text, HOOK_OUTPUT_LINES);
    return end.length <= HOOK_OUTPUT_CHARS ? end : `…${end.slice(-HOOK_OUTPUT_CHARS)}`;
}

export interface HookProviderOptions {
    runner: ProcessRunner;
    logger: EngineLogger;
    runtimeDir: () => string;
}

/** Input keys a Hook does not have: refused (a misspelt `runAs` would run the command as the deploy user). */
function unknownInputs(inputs: Record<string, unknown>): provider.CheckFailure[] {
    const known = Object.keys(hookInputsSchema.shape);
    return Object.keys(inputs)
        .filter((key) => inputs[key] !== undefined && !known.includes(key))
        .map((key) => ({ property: key, reason: `nixos:index:Hook has no input "${key}"; ${didYouMean(key, known)}its inputs are the host's connection settings, hook, command, runAs, trigger and timeoutSeconds` }));
}

export function hookArgv(inputs: Pick<HookInputs, "command" | "runAs">): string[] {
    return inputs.runAs ? ["sudo", "-n", "-u", inputs.runAs, "--", ...inputs.command] : [...inputs.command];
}

export class HookProvider {
    constructor(private readonly options: HookProviderOptions) {}

    async check(news: Record<string, unknown>): Promise<provider.CheckResult> {
        const plain = unwrapSecrets(news);
        const parsed = hookInputsSchema.safeParse(plain.value);
        const unknown = unknownInputs(plain.value as Record<string, unknown>);
        // With the defaults filled in (user), as the state records them: else every diff sees a change.
        if (parsed.success && unknown.length === 0) return { inputs: wrapSecrets(parsed.data as Record<string, unknown>, plain.paths) };
        // The host's connection may come from resources not created yet: checked once known.
        const failures = [...(parsed.success ? [] : checkFailures(parsed.error.issues, unknownKeys(plain.value as Record<string, unknown>))), ...unknown];
        if (failures.length === 0) return { inputs: news };
        return { failures: failures.map((failure) => ({ ...failure, reason: maskSecrets(failure.reason, plain.texts) })) };
    }

    async diff(olds: Record<string, unknown>, news: Record<string, unknown>): Promise<provider.DiffResult> {
        const old = unwrapSecrets<Record<string, unknown>>(olds).value;
        const next = unwrapSecrets<Record<string, unknown>>(news).value;
        const keys = Object.keys(hookInputsSchema.shape);
        const changed = keys.some((key) => JSON.stringify(old[key] ?? null) !== JSON.stringify(next[key] ?? null));
        return { changes: changed, replaces: [], deleteBeforeReplace: false };
    }

    private async run(urn: string, news: Record<string, unknown>, olds?: Record<string, unknown>): Promise<Record<string, unknown>> {
        const plain = unwrapSecrets(news);
        // The recorded output may hold secrets too: never echo them either.
        const secrets = [...plain.texts, ...(olds ? unwrapSecrets(olds).texts : [])];
        const logger = maskingLogger(this.options.logger, secrets);
        const inputs = hookInputsSchema.parse(plain.value);
        const target = sshTargetOf(inputs as unknown as HostInputs);
        const connection = new SshConnection(target, { runner: this.options.runner, runtimeDir: this.options.runtimeDir() });
        await logger.log("info", urn, `${inputs.name}: hook ${inputs.hook}: ${inputs.command.join(" ")}`, true);
        try {
            const result = await connection.run(hookArgv(inputs), { timeoutMs: (inputs.timeoutSeconds ?? 600) * 1000 });
            const output = hookOutputRecord(maskSecrets(`${result.stdout}${result.stderr}`, secrets));
            if (result.code !== 0) {
                throw new FleetError({
                    phase: "hook",
                    host: inputs.name,
                    message: `hook ${inputs.hook} ${result.timedOut ? "did not finish in time" : `exited with ${result.code ?? result.signal}`}; the system stays deployed (hooks do not roll back)`,
                    hint: "fix the hook or what it runs against; the next `pulumi up` runs it again",
                    detail: output,
                });
            }
            const outputs: HookOutputs = { ...inputs, ranAt: new Date().toISOString(), output };
            return { ...wrapSecrets(outputs as unknown as Record<string, unknown>, plain.paths), output: secretValue(output) };
        } catch (error) {
            throw new Error(maskSecrets(formatError(error), secrets));
        } finally {
            await connection.close().catch(() => undefined);
        }
    }

    async create(urn: string, news: Record<string, unknown>): Promise<provider.CreateResult> {
        const outs = await this.run(urn, news);
        const plain = unwrapSecrets<HookInputs>(news).value;
        return { id: `${plain.name}/${plain.hook}`, outs };
    }

    async update(urn: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<provider.UpdateResult> {
        return { outs: await this.run(urn, news, olds) };
    }
}
