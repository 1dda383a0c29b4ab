// The nixos:index:Host resource's properties: what the program sends (inputs) and what the stack
// records (outputs). Inputs are validated here again (check), since the engine may also receive
// them from an old state or another program.
import { z } from "zod";
import { STORE_PATH } from "../nix/flags";
import { healthChecksSchema } from "../config/healthChecks";
import { sshOption } from "../config/sshRules";
import type { SshTarget } from "../ssh/target";
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
    name: z.string().min(1),
    address: z.string().min(1).refine((value) => !value.startsWith("-"), "must not start with '-'"),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().min(1).regex(/^[a-z_][a-z0-9_.-]*$/i, "must be a user name"),
    identityFile: z.string().optional(),
    proxyJump: z.string().optional(),
    hostKey: z.string().optional(),
    knownHostsFile: z.string().optional(),
    sshConfigFile: z.string().optional(),
    // The same allow-list as host files: inputs may also come from an old state or another program.
    sshOptions: z.array(sshOption()).optional(),
    insecureSkipHostKeyCheck: z.boolean().optional(),
    connectTimeout: z.number().positive().optional(),
    confirmTimeout: z.number().min(0).optional(),
    reconnectTimeout: z.number().positive().optional(),
    keepGenerations: z.number().int().positive().optional(),
    deleteOlderThan: z.string().regex(/^\d+d$/, "must be a number of days like 30d").optional(),
    gc: z.boolean().optional(),
    healthChecks: healthChecksSchema.optional(),
    flake: z.string().min(1),
    attribute: z.string().min(1),
    buildOn: z.enum(["local", "target"]),
    action: z.enum(["switch", "boot", "test", "dry-activate"]),
    substituteOnDestination: z.boolean(),
    tags: z.array(z.string()),
    storePath,
    /** Absent for a pinned (rolled back) host: its store path is not this evaluation's. */
    drvPath: z.string().regex(/^\/nix\/store\/.+\.drv$/, "must be a .drv store path").optional(),
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

export type HostInputs = z.infer<typeof hostInputsSchema>;

export interface DeploymentRecord {
    generation: number | null;
    storePath: string;
    action: string;
    /** When the system was activated (ISO time): the record's time. */
    activatedAt: string;
    /**
     * "deploy": the configuration was deployed; "rollback": a recorded system was deployed again by
     * `rollback` (pinned). Records made before this field: absent (see isRollbackRecord).
     */
    kind?: "deploy" | "rollback";
    /** For a rollback: activatedAt of the deploy record it went back to. */
    rollbackTo?: string;
    /** The stack update that made the record; null when the program could not tell. */
    stackUpdate?: number | null;
    /** user@machine who ran it. */
    operator?: string | null;
    /** The flake revision of the deployed system (for a rollback: the one it went back to). */
    flake?: FlakeRevision | null;
}

export interface HostOutputs extends HostInputs {
    /** The profile generation deployed (null for test/dry-activate on a host without a profile). */
    generation: number | null;
    previousGeneration: number | null;
    activatedAt: string;
    nixosVersion: string | null;
    runningStorePath: string | null;
    bootedStorePath: string | null;
    profileStorePath: string | null;
    /** The last deployments, newest first, so rollback needs nothing but the current state. */
    history: DeploymentRecord[];
    /** What the last deploy of this host did, for the operator's summary. */
    lastDeploy: LastDeploy;
}

export interface LastDeploy {
    activated: boolean;
    generationBefore: number | null;
    generationAfter: number | null;
    pathsCopied: number;
    bytesCopied: number;
    /** Milliseconds per phase (build, connect, copy, activate). */
    timings: Record<string, number>;
}

export const HISTORY_LIMIT = 20;

/**
 * Input keys whose change means an update. drvPath is derived from storePath, and provenance and
 * rollout only describe the run (a new revision with the same system, or a new batch, is no reason
 * to deploy), so they are left out.
 */
export const DIFF_KEYS = (Object.keys(hostInputsSchema.shape) as (keyof HostInputs)[]).filter(
    (key) => key !== "drvPath" && key !== "provenance" && key !== "rollout",
);

export function sshTargetOf(inputs: HostInputs): SshTarget {
    return {
        name: inputs.name,
        address: inputs.address,
        port: inputs.port,
        user: inputs.user,
        identityFile: inputs.identityFile,
        proxyJump: inputs.proxyJump,
        hostKey: inputs.hostKey,
        knownHostsFile: inputs.knownHostsFile,
        sshConfigFile: inputs.sshConfigFile,
        sshOptions: inputs.sshOptions,
        insecureSkipHostKeyCheck: inputs.insecureSkipHostKeyCheck,
        connectTimeout: inputs.connectTimeout,
    };
}

export function deployRequestOf(inputs: HostInputs): DeployRequest {
    return {
        target: sshTargetOf(inputs),
        storePath: inputs.storePath,
        drvPath: inputs.drvPath,
        flake: inputs.flake,
        attribute: inputs.attribute,
        buildOn: inputs.buildOn,
        action: inputs.action,
        substituteOnDestination: inputs.substituteOnDestination,
        pinnedGeneration: inputs.pin?.generation,
        confirmTimeout: inputs.confirmTimeout,
        reconnectTimeout: inputs.reconnectTimeout,
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
