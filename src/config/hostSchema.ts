// The schema of one host file, hosts/<name>.yaml. Top-level defaults are kept out of the zod
// schema (in HOST_DEFAULTS) so a parsed file still tells which fields it set: stack defaults
// fill only what the file leaves unset, and overrides are layered on top of the file.
import { z } from "zod";
import { HOST_DEFAULTS, LOCAL_PATH_FIELDS, hostFieldsShape, type ResolvedHostFields } from "./hostFields";
import { resolveFlakeRef, resolveLocalPath } from "./paths";
import { expecting, failure } from "./rules";
import { jumpHopHost } from "./sshRules";

// The fields themselves are declared once, in hostFields.ts.
export { ACTIONS, BUILD_LOCATIONS, HOST_DEFAULTS, HOST_FIELDS, hostFieldsShape, type Action, type BuildLocation } from "./hostFields";

type HostFieldsShape = z.infer<z.ZodObject<typeof hostFieldsShape>>;

/** Rules that involve more than one field; run on whole hosts, after stack layers are merged. */
export function checkFieldCombinations(fields: Partial<HostFieldsShape>, context: z.RefinementCtx): void {
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

/** A host with every default applied and every local path absolute (its fields: hostFields.ts). */
export type HostConfig = ResolvedHostFields & {
    /** The file name without extension; also the Pulumi resource name. */
    readonly name: string;
    /** Absolute path of the host file. */
    readonly file: string;
    /** Project root that relative paths were resolved against. */
    readonly baseDir: string;
    /** The fields the host file set (paths resolved), before defaults: the base for stack layering. */
    readonly declared: HostFields;
};

/** Whether activation on this host goes through `sudo -n` (any user but root). */
export function needsSudo(host: Pick<HostConfig, "user">): boolean {
    return host.user !== "root";
}

/** Makes every local path in a set of host fields absolute (idempotent). */
export function resolveFieldPaths<T extends HostPatch>(fields: T, baseDir: string): T {
    const resolved: T = { ...fields };
    for (const key of LOCAL_PATH_FIELDS) {
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
