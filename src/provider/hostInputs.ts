// The nixos:index:Host resource's properties: what the program sends (inputs) and what the stack
// records (outputs). Inputs are validated here again (check), since the engine may also receive
// them from an old state or another program.
import { z } from "zod";
import { STORE_PATH } from "../nix/flags";
import { CONNECTION_FIELDS, HOST_DEFAULTS, hostFieldInputsShape } from "../config/hostFields";
import { SECRET_NAME_PATTERN, distinctSecretPaths, resolvedSecretFileSchema } from "../config/secretFiles";
import { NAMES_FILES_RULE, namesFiles, type SshTarget } from "../ssh/target";
import type { DeployRequest } from "../deploy/deployHost";

const storePath = z.string().regex(STORE_PATH, "must be a Nix store path (/nix/store/<hash>-<name>)");

/** The flake revision a deployment was made from (see program/provenance.ts). */
export const flakeRevisionSchema = z.object({
    /** The flake reference as the host's file names it. */
    url: z.string(),
    /** The git commit; for a dirty tree the commit it is based on when Nix says (null on Nix 2.8). */
    revision: z.string().nullable(),
    /** Uncommitted changes in a git flake; null when the flake is not git. */
    dirty: z.boolean().nullable(),
    lastModified: z.number().nullable(),
    narHash: z.string().nullable(),
});

export type FlakeRevision = z.infer<typeof flakeRevisionSchema>;

/** Who and what made a deployment: written into its record, never a reason to deploy. */
export const provenanceSchema = z.object({
    /** The number of the stack update doing the deployment (as `generations` shows it); null when unknown. */
    stackUpdate: z.number().int().positive().nullable(),
    /** user@machine, or NIXOS_FLEET_OPERATOR. */
    operator: z.string(),
    flake: flakeRevisionSchema.nullable(),
});

export type Provenance = z.infer<typeof provenanceSchema>;

export const hostInputsSchema = z.object({
    // The host's name (the library's Host: its resource name) names its ssh files: refused here,
    // at preview, rather than when the deploy opens its connection.
    name: z.string().min(1).refine(namesFiles, `must be a name of ${NAMES_FILES_RULE}`),
    // Every host field the resource takes, declared once with its host-file rule (config/hostFields.ts).
    ...hostFieldInputsShape,
    storePath,
    /** Absent for a pinned (rolled back) host: its store path is not this evaluation's. */
    drvPath: z.string().regex(STORE_PATH, "must be a .drv store path").regex(/\.drv$/, "must be a .drv store path").optional(),
    /** Set by `rollback`: deploy this recorded store path instead of the configuration. */
    pin: z
        .object({
            generation: z.number().int().positive().optional(),
            reason: z.string().optional(),
            /** What the configuration evaluates to now, shown beside the pin. */
            configuredStorePath: storePath.optional(),
            /** activatedAt of the recorded deployment the pin goes back to (identifies it in the history). */
            activatedAt: z.string().optional(),
        })
        .optional(),
    /** Revision, operator and stack update of this run: recorded with a deployment, not diffed. */
    provenance: provenanceSchema.optional(),
    /** Secret files by name; each value is a secret (encrypted in the state, `[secret]` in previews). */
    secrets: z.record(z.string().regex(SECRET_NAME_PATTERN, "must be a secret name"), resolvedSecretFileSchema).superRefine(distinctSecretPaths).optional(),
    /**
     * The hosts this run evaluated that build here (buildOn: local): their changed systems are
     * built in one `nix-store --realise` (nix/sharedBuild.ts). Describes the run: not diffed, not recorded.
     */
    buildGroup: z.array(z.string()).optional(),
    /** The host's place in a staged rollout (program/rollout.ts): said in its error, not diffed. */
    rollout: z
        .object({
            batch: z.number().int().positive(),
            batches: z.number().int().positive(),
            canary: z.boolean(),
            /** Failed hosts `deploy` tolerates before it holds back later batches (plain `pulumi up` stops at the first). */
            maxFailures: z.number().int().min(0).optional(),
            /** The hosts of later batches, which a failure of this host holds back. */
            later: z.array(z.string()),
        })
        .optional(),
});

/**
 * What the program registers for a host a targeted run does not deploy (`deploy --hosts`,
 * `pulumi up --target`): its settings without an evaluated system. The engine keeps such a
 * host's recorded state and never checks these inputs; if it ever did, check refuses them, so a
 * host that was not evaluated is never deployed.
 */
export const NOT_EVALUATED = "notEvaluated";

/** A host's inputs without an evaluated system, with the reason (NOT_EVALUATED). */
export type NotEvaluatedInputs = Omit<HostInputs, "storePath" | "drvPath"> & { [NOT_EVALUATED]: string };

export type HostInputs = z.infer<typeof hostInputsSchema>;

/** One recorded deployment of a host (newest first in `history`). */
export const deploymentRecordSchema = z.object({
    generation: z.number().int().nullable(),
    storePath: z.string(),
    action: z.string(),
    /** When the system was activated (ISO time): the record's time. */
    activatedAt: z.string(),
    /**
     * "deploy": the configuration was deployed; "rollback": a recorded system was deployed again by
     * `rollback` (pinned). Records made before this field: absent (see isRollbackRecord).
     */
    kind: z.enum(["deploy", "rollback"]).optional(),
    /** For a rollback: activatedAt of the deploy record it went back to. */
    rollbackTo: z.string().optional(),
    /** The stack update that made the record; null when the program could not tell. */
    stackUpdate: z.number().int().nullable().optional(),
    /** user@machine who ran it. */
    operator: z.string().nullable().optional(),
    /** The flake revision of the deployed system (for a rollback: the one it went back to). */
    flake: flakeRevisionSchema.nullable().optional(),
});

export type DeploymentRecord = z.infer<typeof deploymentRecordSchema>;

/** A host the stack rolled back: to what, when, by whom. */
export const rollbackMarkSchema = z.object({
    generation: z.number().int().nullable(),
    storePath: z.string(),
    /** When the rollback was deployed (ISO time). */
    at: z.string(),
    /** user@machine who ran it; null when the run could not tell. */
    by: z.string().nullable(),
    /** The pin's reason, as `rollback` wrote it. */
    reason: z.string().nullable(),
    /** activatedAt of the deployment it went back to; null for a generation this stack did not deploy. */
    rollbackTo: z.string().nullable(),
});

export type RollbackMark = z.infer<typeof rollbackMarkSchema>;

/** A refresh that could not read the host. */
export const unreachableSchema = z.object({
    /** The first refresh that could not reach it (kept while it stays unreachable). */
    since: z.string(),
    /** The latest refresh that tried. */
    checkedAt: z.string(),
    /** Why (the first line of the connect error). */
    error: z.string(),
});

export type Unreachable = z.infer<typeof unreachableSchema>;

/** What the last deploy of this host did, for the operator's summary. */
export const lastDeploySchema = z.object({
    activated: z.boolean(),
    generationBefore: z.number().int().nullable(),
    generationAfter: z.number().int().nullable(),
    pathsCopied: z.number().int(),
    bytesCopied: z.number().int(),
    /** Milliseconds per phase (build, connect, copy, activate). */
    timings: z.record(z.string(), z.number()),
    /** Where the system was built: "local" (the deployer), the host's own name (buildOn: target) or its build host's; null when nothing was built (a rollback). Absent in older states. */
    builtOn: z.string().nullable().optional(),
});

export type LastDeploy = z.infer<typeof lastDeploySchema>;

/** The last reboot a deploy made (deploy/reboot.ts). */
export const lastRebootSchema = z.object({
    /** booted: the new boot answered and runs the deployed system; unknown: it did not come back in time; failed: it came back otherwise. */
    outcome: z.enum(["booted", "unknown", "failed"]),
    /** When the reboot was issued (ISO time), or when it was about to be. */
    at: z.string(),
    previousBootId: z.string().nullable(),
    bootId: z.string().nullable(),
    /** Seconds from issuing the reboot until the new boot answered (for unknown: how long we waited). */
    waitedSeconds: z.number().nullable(),
    /** /run/booted-system after the reboot; null when not known. */
    bootedStorePath: z.string().nullable(),
    /** For unknown and failed: what happened and how to find out. */
    error: z.string().optional(),
});

export type LastReboot = z.infer<typeof lastRebootSchema>;

/** What the stack records for a host beyond its inputs: the single definition of Host's outputs. */
export const hostOutputFieldsSchema = z.object({
    /** The profile generation deployed (null for test/dry-activate on a host without a profile). */
    generation: z.number().int().nullable(),
    previousGeneration: z.number().int().nullable(),
    activatedAt: z.string(),
    nixosVersion: z.string().nullable(),
    runningStorePath: z.string().nullable(),
    bootedStorePath: z.string().nullable(),
    profileStorePath: z.string().nullable(),
    /** The last deployments, newest first, so rollback needs nothing but the current state. */
    history: z.array(deploymentRecordSchema),
    /** What the last deploy of this host did, for the operator's summary. */
    lastDeploy: lastDeploySchema,
    /**
     * Set while the host runs a system `rollback` pinned (null once the configuration is deployed
     * again): a preview or update whose config lacks the pin says it undoes this (rollbackMark.ts).
     * Absent in states written before it existed.
     */
    rolledBack: rollbackMarkSchema.nullable().optional(),
    /** When the stack last reached the host (a deploy, a refresh or the import). */
    lastSeenAt: z.string().nullable().optional(),
    /** Set by a refresh that could not reach the host (its recorded state was kept); null once reached again. */
    unreachable: unreachableSchema.nullable().optional(),
    /** When `pulumi import` adopted the host (nothing was activated then). */
    adoptedAt: z.string().optional(),
    /**
     * Why the host must reboot to run its deployed system fully (kernel, initrd or kernel-modules
     * changed; action boot), as of the last deploy; null when it need not; absent when unknown.
     */
    rebootNeeded: z.string().nullable().optional(),
    /** The last reboot a deploy made; absent until one did. */
    lastReboot: lastRebootSchema.optional(),
});

export type HostOutputs = HostInputs & z.infer<typeof hostOutputFieldsSchema>;

export const HISTORY_LIMIT = 20;

/**
 * Input keys whose change means an update. drvPath is derived from storePath, and provenance and
 * rollout only describe the run (a new revision with the same system, or a new batch, is no reason
 * to deploy), so they are left out; so is buildHost (another build host, or a change of its
 * connection settings, builds the same system: the next deploy uses the new one), and
 * rebootTimeout only bounds a reboot's wait.
 */
export const DIFF_KEYS = (Object.keys(hostInputsSchema.shape) as (keyof HostInputs)[]).filter(
    (key) => key !== "drvPath" && key !== "provenance" && key !== "buildGroup" && key !== "rollout" && key !== "buildHost" && key !== "rebootTimeout",
);

/** The reason a host was registered without evaluation (NOT_EVALUATED), if it was. */
export function notEvaluatedReason(news: Record<string, unknown>): string | undefined {
    const reason = news[NOT_EVALUATED];
    return typeof reason === "string" ? reason : undefined;
}

/** The connection inputs: the host's name and every connection field (config/hostFields.ts). */
export const CONNECTION_KEYS = ["name", ...CONNECTION_FIELDS] as const;

/** The connection part of a host's (or hook's) inputs; absent fields stay absent. */
export type ConnectionInputs = Pick<HostInputs, (typeof CONNECTION_KEYS)[number]>;

/** The connection part of a set of inputs, without the fields they leave unset. */
export function connectionInputsOf(inputs: ConnectionInputs): ConnectionInputs {
    const picked: Record<string, unknown> = {};
    for (const key of CONNECTION_KEYS) if (inputs[key] !== undefined) picked[key] = inputs[key];
    return picked as ConnectionInputs;
}

/** How to reach the host: every connection key, unset ones as undefined. */
export function sshTargetOf(inputs: ConnectionInputs): SshTarget {
    // Typed as the connection inputs, so a connection field SshTarget lacks (or types otherwise) fails to compile.
    const target = Object.fromEntries(CONNECTION_KEYS.map((key) => [key, inputs[key]])) as ConnectionInputs;
    return target;
}

/**
 * How each secret file changes between the recorded inputs and the new ones, by name (never a
 * value): the engine shows a change inside a secret as nothing at all, so the preview says it.
 */
export function secretFileChanges(olds: Pick<HostInputs, "secrets">, news: Pick<HostInputs, "secrets">): string[] {
    const before = olds.secrets ?? {};
    const after = news.secrets ?? {};
    const changes: string[] = [];
    for (const [name, file] of Object.entries(after)) {
        const old = before[name];
        if (!old) changes.push(`${name} (new)`);
        else {
            const what = [
                old.value !== file.value ? "value" : undefined,
                ...(["path", "owner", "group", "mode", "uploadAt"] as const).filter((key) => old[key] !== file[key]),
            ].filter((item): item is string => item !== undefined);
            if (what.length) changes.push(`${name} (${what.join(", ")} changed)`);
        }
    }
    for (const name of Object.keys(before)) if (!after[name]) changes.push(`${name} (removed: deleted from the host)`);
    return changes;
}

/** The secret files a deploy writes, and the recorded ones it deletes (removed, or moved to another path). */
export function secretChanges(inputs: Pick<HostInputs, "secrets">, old?: Pick<HostInputs, "secrets">): Pick<DeployRequest, "secrets" | "removedSecrets"> {
    const secrets = Object.entries(inputs.secrets ?? {}).map(([name, file]) => ({ name, ...file }));
    const kept = new Set(secrets.map((file) => file.path));
    const removedSecrets = Object.entries(old?.secrets ?? {})
        .filter(([, file]) => !kept.has(file.path))
        .map(([name, file]) => ({ name, path: file.path }));
    return { secrets, removedSecrets };
}

export function deployRequestOf(inputs: HostInputs, old?: Pick<HostInputs, "secrets">): DeployRequest {
    return {
        ...secretChanges(inputs, old),
        target: sshTargetOf(inputs),
        storePath: inputs.storePath,
        drvPath: inputs.drvPath,
        flake: inputs.flake,
        attribute: inputs.attribute,
        buildOn: inputs.buildOn,
        ...(inputs.buildHost ? { buildHost: inputs.buildHost } : {}),
        action: inputs.action,
        substituteOnDestination: inputs.substituteOnDestination,
        pinnedGeneration: inputs.pin?.generation,
        confirmTimeout: inputs.confirmTimeout,
        reconnectTimeout: inputs.reconnectTimeout,
        reboot: inputs.reboot,
        rebootTimeout: inputs.rebootTimeout ?? HOST_DEFAULTS.rebootTimeout,
        healthChecks: inputs.healthChecks,
        cleanup:
            inputs.keepGenerations !== undefined || inputs.deleteOlderThan !== undefined || inputs.gc
                ? { keepGenerations: inputs.keepGenerations, deleteOlderThan: inputs.deleteOlderThan, gc: inputs.gc ?? false }
                : undefined,
    };
}

/** Only the input keys of a property bag (outputs carry more). */
export function pickInputs(props: Record<string, unknown>): Record<string, unknown> {
    const picked: Record<string, unknown> = {};
    for (const key of Object.keys(hostInputsSchema.shape)) {
        if (props[key] !== undefined) picked[key] = props[key];
    }
    return picked;
}
