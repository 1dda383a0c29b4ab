// Which parts of the stack's config are secret. The language host hands the program every value
// decrypted (PULUMI_CONFIG) and names the secret top-level keys apart (PULUMI_CONFIG_SECRET_KEYS,
// e.g. "nixos-fleet:overrides"). A key set with `config set --secret --path` is secret only at its
// `secure:` leaves, which the stack file shows; those leaves are what the program marks secret, so
// a secret sshOptions of one host does not hide every other override. A secret key whose file
// shows no `secure:` leaf (set by other means) is secret as a whole.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import type { FieldPath } from "../config/issues";
import { hostFieldsShape } from "../config/hostSchema";
import { MIN_MASKED_LENGTH } from "../provider/secretMarkers";

export { maskSecrets } from "../provider/secretMarkers";

export type ConfigPath = readonly (string | number)[];

/** The top-level keys (without "<namespace>:") that PULUMI_CONFIG_SECRET_KEYS names in a namespace. */
export function secretTopKeys(text: string | undefined, namespace: string): string[] {
    if (!text) return [];
    let parsed: unknown;
    try {
        parsed = JSON.parse(text);
    } catch {
        return [];
    }
    if (!Array.isArray(parsed)) return [];
    const keys = new Set<string>();
    for (const full of parsed) {
        if (typeof full !== "string") continue;
        if (full.startsWith(`${namespace}:config:`)) keys.add(full.slice(`${namespace}:config:`.length));
        else if (full.startsWith(`${namespace}:`)) keys.add(full.slice(`${namespace}:`.length));
    }
    return [...keys];
}

const isSecure = (value: unknown): boolean =>
    typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && typeof (value as { secure?: unknown }).secure === "string";

/** The paths of `secure:` leaves under one value of the stack file. */
export function secureLeaves(value: unknown, at: ConfigPath = []): ConfigPath[] {
    if (isSecure(value)) return [at];
    if (Array.isArray(value)) return value.flatMap((item, index) => secureLeaves(item, [...at, index]));
    if (typeof value === "object" && value !== null) return Object.entries(value).flatMap(([key, item]) => secureLeaves(item, [...at, key]));
    return [];
}

/** The secret paths (relative to the namespace) from the secret keys and the stack file's text. */
export function secretConfigPaths(options: { namespace: string; secretKeys: readonly string[]; stackFileText?: string }): ConfigPath[] {
    let config: Record<string, unknown> = {};
    try {
        const parsed = options.stackFileText ? (parse(options.stackFileText) as { config?: Record<string, unknown> } | null) : null;
        config = parsed?.config ?? {};
    } catch {
        config = {};
    }
    const paths: ConfigPath[] = [];
    for (const key of options.secretKeys) {
        const value = config[`${options.namespace}:${key}`] ?? config[`${options.namespace}:config:${key}`];
        const leaves = secureLeaves(value);
        if (leaves.length === 0) paths.push([key]);
        else for (const leaf of leaves) paths.push([key, ...leaf]);
    }
    return paths;
}

/** The secret paths of the stack the program runs in (Pulumi.<stack>.yaml beside Pulumi.yaml). */
export function programSecretPaths(namespace: string, projectRoot: string, stack: string, env: NodeJS.ProcessEnv = process.env): ConfigPath[] {
    const file = join(projectRoot, `Pulumi.${stack}.yaml`);
    const stackFileText = existsSync(file) ? readFileSync(file, "utf8") : undefined;
    // A language host that does not name the secret keys: the stack file's secure: leaves say it.
    const secretKeys = env.PULUMI_CONFIG_SECRET_KEYS === undefined ? stackFileSecretKeys(stackFileText, namespace) : secretTopKeys(env.PULUMI_CONFIG_SECRET_KEYS, namespace);
    if (secretKeys.length === 0) return [];
    return secretConfigPaths({ namespace, secretKeys, stackFileText });
}

/** The namespace's keys (without "<namespace>:") that hold a `secure:` value in the stack file. */
export function stackFileSecretKeys(stackFileText: string | undefined, namespace: string): string[] {
    let config: Record<string, unknown> = {};
    try {
        config = (stackFileText ? (parse(stackFileText) as { config?: Record<string, unknown> } | null)?.config : undefined) ?? {};
    } catch {
        return [];
    }
    return Object.entries(config)
        .filter(([key, value]) => key.startsWith(`${namespace}:`) && secureLeaves(value).length > 0)
        .map(([key]) => key.slice(namespace.length + 1).replace(/^config:/, ""));
}

/** Whether one path lies inside the other (either way round): a value there is (or holds) a secret. */
function related(a: ConfigPath, b: ConfigPath): boolean {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) if (String(a[i]) !== String(b[i])) return false;
    return true;
}

export function isSecretAt(paths: readonly ConfigPath[], at: ConfigPath): boolean {
    return paths.some((path) => related(path, at));
}

/**
 * The host fields whose value may come from a secret: `overrides.<host>.<field>` or
 * `defaults.<field>` (or the whole `overrides`/`defaults` key) holds a secret.
 */
export function secretHostFields(paths: readonly ConfigPath[], host: string, fields: readonly string[]): string[] {
    // Only host fields come from defaults and overrides: name, storePath, secrets, … never do.
    return fields.filter((field) => field in hostFieldsShape && (isSecretAt(paths, ["overrides", host, field]) || isSecretAt(paths, ["defaults", field])));
}

/**
 * The settings of each secret file of a host that came from secret config (`secrets.<host>.<name>.path`
 * set with --secret, or a whole secret `secrets` key), by secret name. The value is always secret.
 */
export function secretFileFields(paths: readonly ConfigPath[], host: string, files: Readonly<Record<string, object>>): Record<string, string[]> {
    const fields: Record<string, string[]> = {};
    for (const [name, file] of Object.entries(files)) {
        const secret = Object.keys(file).filter((field) => field !== "value" && isSecretAt(paths, ["secrets", host, name, field]));
        if (secret.length > 0) fields[name] = secret;
    }
    return fields;
}

/** Every text under the secret paths of a raw config (for masking messages); short values are left out. */
export function secretTexts(paths: readonly ConfigPath[], raw: Record<string, unknown>): string[] {
    const texts = new Set<string>();
    const collect = (value: unknown): void => {
        if (typeof value === "string" || typeof value === "number") {
            if (String(value).length >= MIN_MASKED_LENGTH) texts.add(String(value));
        } else if (Array.isArray(value)) value.forEach(collect);
        else if (typeof value === "object" && value !== null) Object.values(value).forEach(collect);
    };
    for (const path of paths) {
        let value: unknown = raw;
        for (const part of path) value = typeof value === "object" && value !== null ? (value as Record<string, unknown>)[String(part)] : undefined;
        collect(value);
    }
    return [...texts];
}

export type { FieldPath };
