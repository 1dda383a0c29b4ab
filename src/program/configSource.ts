// The program's view of the stack's config. Pulumi hands a program its config as JSON in
// PULUMI_CONFIG; a stack without any config may come as `null` (older language hosts, including
// ours before it sent `{}`), which the SDK's own Config cannot read ("Cannot convert undefined or
// null to object"). Read here, a missing or null config is simply empty, so a new stack gets the
// "set nixos-fleet:hosts …" message instead of a crash.
import type { ConfigSource } from "../config";
import { FleetError } from "../errors";

/** The config map from PULUMI_CONFIG's text: missing, empty or `null` is {}. */
export function parseConfigEnvironment(text: string | undefined): Record<string, unknown> {
    if (text === undefined || text.trim() === "") return {};
    let parsed: unknown;
    try {
        parsed = JSON.parse(text);
    } catch (error) {
        throw new FleetError({
            phase: "config",
            message: "the stack's config (PULUMI_CONFIG) from the language host is not JSON",
            detail: error instanceof Error ? error.message : String(error),
        });
    }
    if (parsed === null) return {};
    if (typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new FleetError({ phase: "config", message: "the stack's config (PULUMI_CONFIG) from the language host is not a mapping" });
    }
    return parsed as Record<string, unknown>;
}

/**
 * One namespace of the config as a ConfigSource: `ns:key` (and the legacy `ns:config:key`), values
 * as the text Pulumi gives (structured values are JSON text).
 */
export function namespaceConfig(all: Record<string, unknown>, namespace: string): Required<ConfigSource> {
    const keys = new Set<string>();
    for (const full of Object.keys(all)) {
        if (full.startsWith(`${namespace}:config:`)) keys.add(full.slice(`${namespace}:config:`.length));
        else if (full.startsWith(`${namespace}:`)) keys.add(full.slice(`${namespace}:`.length));
    }
    return {
        keys: () => [...keys],
        get(key: string): string | undefined {
            const value = all[`${namespace}:${key}`] ?? all[`${namespace}:config:${key}`];
            if (value === undefined || value === null) return undefined;
            return typeof value === "string" ? value : JSON.stringify(value);
        },
    };
}

/** The program's config source for a namespace, from the environment the language host set. */
export function programConfig(namespace: string, text: string | undefined = process.env.PULUMI_CONFIG): Required<ConfigSource> {
    return namespaceConfig(parseConfigEnvironment(text), namespace);
}

/** The namespace's values, keyed without "<namespace>:", each JSON-decoded when it can be. */
export function namespaceValues(all: Record<string, unknown>, namespace: string): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(all)) {
        if (!key.startsWith(`${namespace}:`)) continue;
        const name = key.slice(namespace.length + 1).replace(/^config:/, "");
        try {
            values[name] = typeof value === "string" ? JSON.parse(value) : value;
        } catch {
            values[name] = value;
        }
    }
    return values;
}
