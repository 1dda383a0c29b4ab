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
        })
        .optional(),
});

export type HostInputs = z.infer<typeof hostInputsSchema>;

export interface DeploymentRecord {
    generation: number | null;
    storePath: string;
    action: string;
    activatedAt: string;
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

/** Input keys whose change means an update. drvPath is derived from storePath, so it is left out. */
export const DIFF_KEYS = (Object.keys(hostInputsSchema.shape) as (keyof HostInputs)[]).filter((key) => key !== "drvPath");

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
