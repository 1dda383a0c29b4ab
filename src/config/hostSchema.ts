// The schema of one host file, hosts/<name>.yaml. Top-level defaults are kept out of the zod
// schema (in HOST_DEFAULTS) so a parsed file still tells which fields it set: stack defaults
// fill only what the file leaves unset, and overrides are layered on top of the file.
import { z } from "zod";
import { NO_HEALTH_CHECKS, healthChecksSchema, type HealthChecks } from "./healthChecks";
import { hooksSchema, type Hook } from "./hooks";
import { tag } from "./names";
import { deleteOlderThan, flakeRef, nixAttributePath } from "./nixRules";
import { resolveFlakeRef, resolveLocalPath } from "./paths";
import { boolean, distinctListOf, expecting, failure, integerIn, listOf, seconds, sshOptsPath } from "./rules";
import { address, hostKey, jumpHopHost, proxyJump, sshOption, userName } from "./sshRules";

export const BUILD_LOCATIONS = ["local", "target"] as const;
export const ACTIONS = ["switch", "boot", "test", "dry-activate"] as const;
export type BuildLocation = (typeof BUILD_LOCATIONS)[number];
export type Action = (typeof ACTIONS)[number];

/** Field rules shared by host files, stack `defaults` and stack `overrides`. */
export const hostFieldsShape = {
    // Connection
    address: address(),
    port: integerIn(1, 65535).optional(),
    user: userName().optional(),
    identityFile: sshOptsPath("a path to an ssh private key").optional(),
    proxyJump: proxyJump().optional(),
    hostKey: hostKey().optional(),
    knownHostsFile: sshOptsPath("a path to a known_hosts file").optional(),
    sshConfigFile: sshOptsPath("a path to an ssh_config file").optional(),
    sshOptions: listOf(sshOption(), 'a list of ssh options like "ServerAliveInterval=15"').optional(),
    insecureSkipHostKeyCheck: boolean().optional(),
    connectTimeout: seconds({ max: 3600 }).optional(),
    // What to build and how to activate it
    flake: flakeRef().optional(),
    attribute: nixAttributePath().optional(),
    buildOn: z.enum(BUILD_LOCATIONS, expecting('"local" or "target"')).optional(),
    action: z.enum(ACTIONS, expecting('"switch", "boot", "test" or "dry-activate"')).optional(),
    substituteOnDestination: boolean().optional(),
    tags: distinctListOf(tag(), "a list of tags").optional(),
    // Reserved for confirm/rollback, health checks, generation cleanup and hooks
    confirmTimeout: seconds({ allowZero: true, max: 3600 }).optional(),
    reconnectTimeout: seconds({ max: 3600 }).optional(),
    healthChecks: healthChecksSchema.optional(),
    keepGenerations: integerIn(1, 10_000, "a number of generations of at least 1").optional(),
    deleteOlderThan: deleteOlderThan().optional(),
    gc: boolean().optional(),
    hooks: hooksSchema.optional(),
};

type HostFieldsShape = z.infer<z.ZodObject<typeof hostFieldsShape>>;

/** Rules that involve more than one field; run on whole hosts, after stack layers are merged. */
function checkFieldCombinations(fields: Partial<HostFieldsShape>, context: z.RefinementCtx): void {
    if (fields.proxyJump !== undefined && fields.address !== undefined && fields.proxyJump.split(",").map(jumpHopHost).includes(fields.address)) {
        context.addIssue({
            code: "custom",
            path: ["proxyJump"],
            ...failure(`proxyJump lists the host itself (${fields.address})`, "list only the jump hosts in front of the host"),
        });
    }
    if (!fields.insecureSkipHostKeyCheck) return;
    for (const pinned of ["hostKey", "knownHostsFile"] as const) {
        if (fields[pinned] !== undefined) {
            context.addIssue({
                code: "custom",
                path: ["insecureSkipHostKeyCheck"],
                ...failure(`insecureSkipHostKeyCheck: true contradicts ${pinned}`, `remove one of them; with ${pinned} set, host-key checking works`),
            });
        }
    }
}

/** One host file. Unknown keys are errors: a misspelt field would otherwise be ignored silently. */
export const hostFileSchema = z
    .strictObject(hostFieldsShape, expecting("a mapping of host fields (address, port, user, ...)"))
    .superRefine(checkFieldCombinations);

/** Any subset of host fields (stack `defaults` and `overrides`), with the same rules. */
export const hostPatchSchema = z
    .strictObject(hostFieldsShape, expecting("a mapping of host fields (address, port, user, ...)"))
    .partial();

/** What a host file may contain (as written in YAML). */
export type HostFileInput = z.input<typeof hostFileSchema>;
/** A validated host file: only the fields it set, before defaults. */
export type HostFields = z.output<typeof hostFileSchema>;
/** A validated subset of host fields: stack `defaults` and `overrides.<host>`. */
export type HostPatch = z.output<typeof hostPatchSchema>;

/** Values for the fields a host file leaves out (`attribute` defaults to nixosConfigurations.<name>). */
export const HOST_DEFAULTS = {
    port: 22,
    user: "root",
    sshOptions: [] as string[],
    insecureSkipHostKeyCheck: false,
    connectTimeout: 10,
    flake: ".",
    buildOn: "local" as BuildLocation,
    action: "switch" as Action,
    substituteOnDestination: false,
    tags: [] as string[],
    confirmTimeout: 30,
    reconnectTimeout: 60,
    healthChecks: NO_HEALTH_CHECKS,
    gc: false,
    hooks: [] as Hook[],
} as const satisfies Partial<HostFields>;

/** A host with every default applied and every local path absolute. */
export interface HostConfig {
    /** The file name without extension; also the Pulumi resource name. */
    readonly name: string;
    /** Absolute path of the host file. */
    readonly file: string;
    /** Project root that relative paths were resolved against. */
    readonly baseDir: string;
    /** The fields the host file set (paths resolved), before defaults: the base for stack layering. */
    readonly declared: HostFields;

    /** Host name, IP address or ssh_config alias. */
    readonly address: string;
    readonly port: number;
    /** Deploy user; anyone but root activates with `sudo -n`. */
    readonly user: string;
    readonly identityFile?: string;
    /** ssh -J syntax: [user@]host[:port][,...] */
    readonly proxyJump?: string;
    /** Pinned public host key, "<type> <base64>". */
    readonly hostKey?: string;
    readonly knownHostsFile?: string;
    /** ssh_config used instead of ~/.ssh/config (ssh -F). */
    readonly sshConfigFile?: string;
    /** Extra `-o Key=Value` options, without the -o. */
    readonly sshOptions: readonly string[];
    /** Dangerous: accept any host key. */
    readonly insecureSkipHostKeyCheck: boolean;
    /** Seconds ssh waits for a connection. */
    readonly connectTimeout: number;
    /** Flake reference; local paths are absolute. */
    readonly flake: string;
    /** Attribute of the flake to build, e.g. nixosConfigurations.alpha. */
    readonly attribute: string;
    readonly buildOn: BuildLocation;
    readonly action: Action;
    /** Let the target fetch from its substituters instead of receiving everything over ssh. */
    readonly substituteOnDestination: boolean;
    readonly tags: readonly string[];
    /** Seconds to wait for confirmation after activation before rolling back; 0 disables. */
    readonly confirmTimeout: number;
    /** Seconds to keep trying to reach a host whose connection dropped during activation. */
    readonly reconnectTimeout: number;
    readonly healthChecks: HealthChecks;
    readonly keepGenerations?: number;
    readonly deleteOlderThan?: string;
    readonly gc: boolean;
    readonly hooks: readonly Hook[];
}

/** Whether activation on this host goes through `sudo -n` (any user but root). */
export function needsSudo(host: Pick<HostConfig, "user">): boolean {
    return host.user !== "root";
}

/** Makes every local path in a set of host fields absolute (idempotent). */
export function resolveFieldPaths<T extends HostPatch>(fields: T, baseDir: string): T {
    const resolved: T = { ...fields };
    for (const key of ["identityFile", "knownHostsFile", "sshConfigFile"] as const) {
        const value = fields[key];
        if (value !== undefined) resolved[key] = resolveLocalPath(value, baseDir);
    }
    if (fields.flake !== undefined) resolved.flake = resolveFlakeRef(fields.flake, baseDir);
    return resolved;
}

export interface HostSource {
    name: string;
    /** Absolute path of the host file. */
    file: string;
    /** Project root for relative paths. */
    baseDir: string;
}

/** Applies defaults to validated host fields. Paths are resolved against `source.baseDir`. */
export function resolveHost(declared: HostFields, source: HostSource): HostConfig {
    const fields = resolveFieldPaths(withoutUndefined(declared), source.baseDir);
    return {
        ...HOST_DEFAULTS,
        flake: resolveFlakeRef(HOST_DEFAULTS.flake, source.baseDir),
        attribute: `nixosConfigurations.${source.name}`,
        ...fields,
        name: source.name,
        file: source.file,
        baseDir: source.baseDir,
        declared: fields,
    };
}

function withoutUndefined<T extends object>(fields: T): T {
    return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as T;
}
