// Per-stack settings from the Pulumi config namespace "nixos-fleet": which hosts the stack
// deploys and how it adjusts them. Kept free of @pulumi/pulumi so it is a plain function of a
// plain object; readStackConfig adapts anything with a `get(key)` (such as pulumi.Config).
import * as path from "node:path";
import { z } from "zod";
import { FleetConfigError, configProblem } from "./configError";
import { hostPatchSchema, type HostPatch } from "./hostSchema";
import { countFieldProblems, fieldProblems, formatFieldPath, type FieldPath } from "./issues";
import { hostName, hostSelector } from "./names";
import { rolloutSchema, type Rollout } from "./rollout";
import { storePath } from "./nixRules";
import { hostSecretsSchema, type SecretFileConfig } from "./secretFiles";
import { expecting, failure, integerIn, listOf } from "./rules";

export const CONFIG_NAMESPACE = "nixos-fleet";

export { hostSelector, isSelector } from "./names";

/**
 * A pin's activatedAt as the deployment history writes it (`toISOString()`: 2026-11-30T10:04:54.560Z).
 * Pulumi's YAML parser reads an unquoted timestamp as a time and hands it on in Go's format
 * (`2026-11-30 10:04:54.56 +0000 UTC`), which older rollbacks wrote unquoted: it then named no
 * deployment of the history, and the record's rollbackTo fell back to the newest one holding the
 * same system. Go's UTC form is turned back into the ISO one; anything else is kept as written.
 */
export function isoPinTime(text: string): string {
    const go = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d+))? \+0000 UTC$/.exec(text);
    if (!go) return text;
    const millis = (go[3] ?? "").padEnd(3, "0").slice(0, 3);
    return `${go[1]}T${go[2]}.${millis}Z`;
}

/** A generation to roll back to (or stay on): used by rollback. */
export const pinSchema = z.strictObject(
    {
        storePath: storePath(),
        /** Why the host is pinned, shown in previews. */
        reason: z.string(expecting("a short text")).optional(),
        /** The system generation number the store path belongs to, when known. */
        generation: integerIn(1, Number.MAX_SAFE_INTEGER, "a generation number of at least 1").optional(),
        /** When the recorded deployment the pin goes back to was activated: which one it is in the host's history. */
        activatedAt: z.string(expecting("an ISO time")).transform(isoPinTime).optional(),
    },
    expecting("a mapping with storePath, reason, generation, activatedAt"),
);

// Stack defaults apply to every host, so a per-host field there is almost certainly a mistake.
const stackDefaultsSchema = hostPatchSchema.superRefine((fields, context) => {
    if (fields.address !== undefined) {
        context.addIssue({
            code: "custom",
            path: ["address"],
            ...failure("address cannot be a stack-wide default", 'set it per host in "overrides.<host>.address" or in the host file'),
        });
    }
});

export const stackConfigSchema = z.strictObject(
    {
        /** Host names and @tags this stack deploys. Required: a stack must say which hosts it owns. */
        hosts: listOf(hostSelector(), 'a list of host names and "@tag" selectors').min(1, expecting("at least one host name or @tag")),
        /** Directory of host files, relative to the project root. */
        hostsDir: z.string(expecting("a directory path")).min(1, expecting("a directory path")).default("hosts"),
        /** Host fields applied to every host of the stack, where its host file leaves them unset. */
        defaults: stackDefaultsSchema.default({}),
        /** Per-host field values that win over the host file. */
        overrides: z.record(hostName(), hostPatchSchema, expecting("a mapping from host name to host fields")).default({}),
        /** Per-host pinned system closures, for rollback. */
        pins: z.record(hostName(), pinSchema, expecting("a mapping from host name to a pin")).default({}),
        /** Per-host secret files, uploaded over ssh (never the Nix store); values set with `config set --secret`. */
        secrets: z.record(hostName(), hostSecretsSchema, expecting("a mapping from host name to its secrets")).default({}),
        /** How many hosts to deploy at once; unset means no limit beyond Pulumi's own. */
        parallel: integerIn(1, 1000, "a number of hosts from 1 to 1000").optional(),
        /** Staged deploys: canary hosts first, then batches; later batches wait for the earlier ones' success. */
        rollout: rolloutSchema.optional(),
    },
    expecting("a mapping of nixos-fleet settings"),
);

export type StackConfigInput = z.input<typeof stackConfigSchema>;
export type Pin = z.output<typeof pinSchema>;

/** Validated stack settings. */
export interface StackConfig {
    readonly hosts: readonly string[];
    /** Absolute path of the hosts directory. */
    readonly hostsDir: string;
    /** Project root; relative paths in defaults and overrides are resolved against it when applied. */
    readonly baseDir: string;
    readonly defaults: HostPatch;
    readonly overrides: Readonly<Record<string, HostPatch>>;
    readonly pins: Readonly<Record<string, Pin>>;
    readonly secrets: Readonly<Record<string, Readonly<Record<string, SecretFileConfig>>>>;
    readonly parallel?: number;
    readonly rollout?: Rollout;
}

export interface StackConfigOptions {
    /** Project root (where Pulumi.yaml lives): relative paths are resolved against it. */
    baseDir: string;
    /** Shown as the location of problems, e.g. "Pulumi.dev.yaml". */
    file?: string;
}

/** Keys read from the namespace by readStackConfig. */
export const STACK_CONFIG_KEYS = Object.keys(stackConfigSchema.shape) as Array<keyof StackConfigInput>;

/** Problems reported for the stack settings; the rest are counted. */
const MAX_STACK_PROBLEMS = 50;

/** Validates the settings object; throws a FleetConfigError naming each `nixos-fleet:<key path>`. */
export function parseStackConfig(raw: unknown, options: StackConfigOptions): StackConfig {
    // Without hosts nothing else matters (a new stack, or one with only pins or overrides): say
    // the one thing to do, whatever else the stack's config holds.
    if (raw === null || raw === undefined || (typeof raw === "object" && (raw as Record<string, unknown>).hosts === undefined)) {
        throw new FleetConfigError([missingHostsProblem(options.file)], `the stack does not list its hosts`);
    }
    const parsed = stackConfigSchema.safeParse(raw);
    if (!parsed.success) {
        const problems = fieldProblems(parsed.error.issues, stackConfigSchema, raw, MAX_STACK_PROBLEMS).map((problem) =>
            configProblem({
                message: problem.message,
                hint: problem.hint ?? settingHint(problem.path),
                field: configKey(problem.path),
                file: options.file,
            }),
        );
        const more = countFieldProblems(parsed.error.issues) - problems.length;
        if (more > 0) problems.push(configProblem({ message: `and ${more} more problems in the stack settings`, file: options.file, hint: "fix the ones above first" }));
        throw new FleetConfigError(problems, `invalid "${CONFIG_NAMESPACE}" stack configuration`);
    }
    const settings = parsed.data;
    const baseDir = path.resolve(options.baseDir);
    return { ...settings, baseDir, hostsDir: path.resolve(baseDir, settings.hostsDir) };
}

/** `set nixos-fleet:hosts …` with an example, for a stack whose config has no hosts. */
export function missingHostsProblem(file?: string) {
    const stack = /^Pulumi\.(.+)\.ya?ml$/.exec(file ?? "")?.[1] ?? "<stack>";
    return configProblem({
        message: `set ${CONFIG_NAMESPACE}:hosts to the hosts this stack deploys (host names and @tags)`,
        field: configKey(["hosts"]),
        file,
        hint:
            `e.g. npm run pulumi -- config set --path '${CONFIG_NAMESPACE}:hosts[0]' psi --stack ${stack}, ` +
            `or in Pulumi.${stack}.yaml: config: { ${CONFIG_NAMESPACE}:hosts: [alpha, "@web"] }`,
    });
}

/** Something that reads raw config strings by key, such as `new pulumi.Config("nixos-fleet")`. */
export interface ConfigSource {
    get(key: string): string | undefined;
    /**
     * Every key the stack sets in the namespace (without "nixos-fleet:"). With it, a misspelt key
     * (`nixos-fleet:paralel`) is an error with a suggestion instead of being ignored.
     */
    keys?(): string[];
}

/**
 * A ConfigSource over a stack's whole configuration as `{"nixos-fleet:hosts": "<text>", ...}`
 * (pulumi.runtime.allConfig(), or the Automation API's config with the values taken out).
 */
export function configSourceOf(all: Readonly<Record<string, string | undefined>>): Required<ConfigSource> {
    const prefix = `${CONFIG_NAMESPACE}:`;
    return {
        get: (key) => all[`${prefix}${key}`],
        keys: () => Object.keys(all).filter((key) => key.startsWith(prefix)).map((key) => key.slice(prefix.length)),
    };
}

/**
 * Reads every key from a config source and validates the result. Pulumi hands structured values
 * back as JSON text and plain values as text, so each value is JSON-decoded when it can be.
 */
export function readStackConfig(source: ConfigSource, options: StackConfigOptions): StackConfig {
    const raw: Record<string, unknown> = {};
    const keys = new Set<string>([...STACK_CONFIG_KEYS, ...(source.keys?.() ?? [])]);
    for (const key of keys) {
        const text = source.get(key);
        if (text !== undefined) raw[key] = decodeConfigValue(text);
    }
    return parseStackConfig(raw, options);
}

function decodeConfigValue(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return text;
    }
}

/** `nixos-fleet:overrides.alpha.port` */
export function configKey(path: FieldPath): string {
    const key = formatFieldPath(path);
    return key ? `${CONFIG_NAMESPACE}:${key}` : CONFIG_NAMESPACE;
}

function settingHint(path: FieldPath): string {
    const [top] = path;
    if (top === "hosts") return `list the stack's hosts in Pulumi.<stack>.yaml, e.g. ${CONFIG_NAMESPACE}:hosts: [alpha, "@web"]`;
    if (top === "secrets") {
        return "e.g. npm run pulumi -- config set --secret --path 'nixos-fleet:secrets.<host>.<name>.value' …; optional path, owner, group, mode, uploadAt (see \"Secret files\" in docs/host-config.md)";
    }
    if (top === "overrides" || top === "defaults") return "overrides and defaults take the same fields as a host file; see docs/host-config.md";
    if (top === "rollout") return 'rollout takes canary (host names and @tags), batchSize (e.g. 2 or "25%") and maxFailures; see "Staged rollouts" in docs/operations.en.md';
    return 'see "Stack settings" in docs/host-config.md';
}
