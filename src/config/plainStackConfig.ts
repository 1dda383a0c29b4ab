// A stack's nixos-fleet config straight from its Pulumi.<stack>.yaml, when that file alone says
// what `pulumi config --json` would: the operator commands then start the engine without waiting
// for a ~0.2 s pulumi run (cli/stack.ts, cli/prefetch.ts). Whatever the file alone cannot answer
// is left to pulumi: a `secure:` value under nixos-fleet (it must be decrypted), an ESC
// `environment`, config or a config directory of the project (Pulumi.yaml), a key without a
// namespace or in the old `nixos-fleet:config:` form, a stack named with its organization, a file
// that is not plain YAML. Loads nothing but the YAML parser.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

const NAMESPACE = "nixos-fleet";

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** Whether a `secure:` value (`{ secure: "v1:…" }`) is anywhere in the value. */
export function holdsSecure(value: unknown): boolean {
    if (Array.isArray(value)) return value.some(holdsSecure);
    if (!isRecord(value)) return false;
    if (Object.keys(value).length === 1 && "secure" in value) return true;
    return Object.values(value).some(holdsSecure);
}

/** The file's YAML (null when empty); undefined when it cannot be read or is not valid YAML. */
function yamlFile(path: string): unknown {
    try {
        return parse(readFileSync(path, "utf8")) ?? null;
    } catch {
        return undefined;
    }
}

/**
 * The stack's `nixos-fleet:*` values as `pulumi config --json` gives them (structured values as
 * JSON text), or undefined when only pulumi can say (see above).
 */
export function plainStackConfig(projectRoot: string, stack: string): Record<string, string> | undefined {
    if (!/^[A-Za-z0-9_.-]+$/.test(stack)) return undefined;
    const project = yamlFile(join(projectRoot, "Pulumi.yaml"));
    if (!isRecord(project) || "config" in project || "stackConfigDir" in project) return undefined;
    const file = yamlFile(join(projectRoot, `Pulumi.${stack}.yaml`));
    // An empty file is a stack without config.
    if (file === null) return {};
    if (!isRecord(file) || "environment" in file) return undefined;
    const config = file.config ?? {};
    if (!isRecord(config)) return undefined;
    const values: Record<string, string> = {};
    for (const [key, value] of Object.entries(config)) {
        if (!key.includes(":") || key.startsWith(`${NAMESPACE}:config:`)) return undefined;
        if (!key.startsWith(`${NAMESPACE}:`)) continue;
        if (value === null || holdsSecure(value)) return undefined;
        values[key] = typeof value === "string" ? value : JSON.stringify(value);
    }
    return values;
}
