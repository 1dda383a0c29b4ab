// A stack's nixos-fleet config straight from its Pulumi.<stack>.yaml, when that file alone says
// what `pulumi config --json` would: the operator commands then start the engine without waiting
// for a ~0.2 s pulumi run (cli/stack.ts, cli/prefetch.ts). Whatever the file alone cannot answer
// is left to pulumi: a `secure:` value under nixos-fleet (it must be decrypted), an ESC
// `environment`, config or a config directory of the project (Pulumi.yaml), a key without a
// namespace or in the old `nixos-fleet:config:` form, a stack named with its organization, a file
// that is not plain YAML. Plain YAML here means what this parser (YAML 1.2) and pulumi's (Go
// yaml.v3, which also reads 1.1 forms) read alike (plainYaml): `010` is 8 to pulumi, `1_000` is
// 1000, `2024-01-02` a time and `<<` merges a mapping, so a file with any such form is left to
// pulumi too. Loads nothing but the YAML parser.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isAlias, isMap, isScalar, isSeq, parseDocument, Scalar, type Node } from "yaml";

const NAMESPACE = "nixos-fleet";

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** Whether a `secure:` value (`{ secure: "v1:…" }`) is anywhere in the value. */
export function holdsSecure(value: unknown): boolean {
    if (Array.isArray(value)) return value.some(holdsSecure);
    if (!isRecord(value)) return false;
    if (Object.keys(value).length === 1 && "secure" in value) return true;
    return Object.values(value).some(holdsSecure);
}

/** A plain scalar's text that Go's yaml.v3 reads as a number or a time (where YAML 1.2 may read a string). */
const GO_NUMBER_OR_TIME = [
    /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/,
    /^[-+]?0[xX][0-9a-fA-F]+$/,
    /^[-+]?0[oO]?[0-7]+$/,
    /^[-+]?0[bB][01]+$/,
    /^[-+]?\.(inf|Inf|INF|nan|NaN|NAN)$/,
    /^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}/,
];
/** A number both parsers read alike: decimal, no leading zero (`010` is octal to yaml.v3), finite, exact. */
const PLAIN_DECIMAL = /^[-+]?(0|[1-9][0-9]{0,14})(\.[0-9]*)?([eE][-+]?[0-9]{1,3})?$/;

/** Whether a plain (unquoted, untagged) scalar means the same to both parsers. */
function sameScalar(node: Scalar): boolean {
    const { value } = node;
    const text = node.source ?? "";
    if (node.type !== Scalar.PLAIN) return typeof value === "string";
    if (typeof value === "number") return PLAIN_DECIMAL.test(text) && Number.isFinite(value);
    if (typeof value === "string") return !GO_NUMBER_OR_TIME.some((form) => form.test(text.replace(/_/g, "")));
    return typeof value === "boolean" || value === null;
}

/**
 * Whether every node of the document means the same to this parser and to pulumi's: no tag, no
 * merge key, keys that are text, scalars as sameScalar says. Aliases are read alike.
 */
function plainYaml(node: unknown, key = false): boolean {
    if (isAlias(node)) return !key;
    if (!node || typeof node !== "object") return node === null || node === undefined ? !key : false;
    if ((node as Node).tag !== undefined) return false;
    if (isScalar(node)) return sameScalar(node) && (!key || (typeof node.value === "string" && node.value !== "<<"));
    if (key) return false;
    if (isSeq(node)) return node.items.every((item) => plainYaml(item));
    if (isMap(node)) return node.items.every((pair) => plainYaml(pair.key, true) && plainYaml(pair.value));
    return false;
}

/** The file's YAML (null when empty); undefined when it cannot be read, is not valid YAML or not read alike by pulumi (plainYaml). */
function yamlFile(path: string): unknown {
    try {
        const document = parseDocument(readFileSync(path, "utf8"), { logLevel: "silent" });
        if (document.errors.length || document.warnings.length || document.directives?.yaml.explicit || !plainYaml(document.contents)) return undefined;
        return document.toJS({ maxAliasCount: 100 }) ?? null;
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
