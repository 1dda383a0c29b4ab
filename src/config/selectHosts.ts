// Choosing a stack's hosts (`alpha`, `@web`) and layering stack settings onto a host file.
import type { FleetError } from "../errors";
import { FleetConfigError, configProblem, throwIfProblems } from "./configError";
import { hostFileSchema, resolveHost, type HostConfig, type HostPatch } from "./hostSchema";
import { fieldProblems, formatFieldPath, type FieldProblem } from "./issues";
import { configKey } from "./stackConfig";
import { didYouMean } from "./suggest";

/**
 * The hosts matching any selector: a host name, or `@tag` for every host carrying that tag.
 * Each host appears once, in the order of `all` (hosts load sorted by name), so the result does
 * not depend on how selectors are written. Unknown names and tags are errors (phase "select")
 * that list what exists; an empty result is an error too.
 */
export function selectHosts(all: readonly HostConfig[], selectors: readonly string[]): HostConfig[] {
    const names = all.map((host) => host.name);
    const tags = [...new Set(all.flatMap((host) => host.tags))].sort();
    const chosen = new Set<string>();
    const problems: FleetError[] = [];
    for (const selector of selectors) {
        const matches = matchSelector(all, selector);
        if (matches.length === 0) problems.push(unknownSelectorProblem(selector, names, tags));
        for (const host of matches) chosen.add(host.name);
    }
    if (selectors.length === 0) {
        problems.push(configProblem({ phase: "select", message: "no hosts selected", hint: `choose from: ${names.join(", ") || "(no hosts)"}` }));
    }
    throwIfProblems(problems, "cannot select hosts", "select");
    return all.filter((host) => chosen.has(host.name));
}

function matchSelector(all: readonly HostConfig[], selector: string): HostConfig[] {
    if (selector.startsWith("@")) {
        const tag = selector.slice(1);
        return all.filter((host) => host.tags.includes(tag));
    }
    return all.filter((host) => host.name === selector);
}

function unknownSelectorProblem(selector: string, names: readonly string[], tags: readonly string[]): FleetError {
    if (selector.startsWith("@")) {
        const tag = selector.slice(1);
        return configProblem({
            phase: "select",
            message: `no host has tag "${tag}"`,
            hint: `${didYouMean(tag, tags)}known tags: ${tags.join(", ") || "(none)"}`,
        });
    }
    return configProblem({
        phase: "select",
        message: `unknown host "${selector}"`,
        hint: `${didYouMean(selector, names)}known hosts: ${names.join(", ") || "(none)"}`,
    });
}

/**
 * Layers stack settings onto a host: stack `defaults` fill the fields its file leaves unset,
 * the file's own values win over them, and the stack's per-host `override` wins over both.
 * Top-level fields are replaced whole (a list or healthChecks in an override replaces the
 * file's). The merged fields are validated again, since some rules span fields; relative paths
 * in the stack layers are resolved against the host's project root.
 */
export function applyOverrides(host: HostConfig, defaults: HostPatch = {}, override: HostPatch = {}): HostConfig {
    const merged = { ...definedFields(defaults), ...host.declared, ...definedFields(override) };
    const parsed = hostFileSchema.safeParse(merged);
    if (!parsed.success) {
        const problems = fieldProblems(parsed.error.issues, hostFileSchema, merged).map((problem) =>
            layeredProblem(problem, host, defaults, override),
        );
        throw new FleetConfigError(problems, "invalid after applying stack settings");
    }
    return resolveHost(parsed.data, { name: host.name, file: host.file, baseDir: host.baseDir });
}

// Names the layer a bad field came from: the stack override, the host file, or stack defaults.
function layeredProblem(problem: FieldProblem, host: HostConfig, defaults: HostPatch, override: HostPatch): FleetError {
    const [top] = problem.path;
    const key = typeof top === "string" ? top : undefined;
    const fromOverride = key !== undefined && key in definedFields(override);
    const fromFile = key !== undefined && !fromOverride && key in host.declared;
    const fromDefaults = key !== undefined && !fromOverride && !fromFile && key in definedFields(defaults);
    const field = fromOverride
        ? configKey(["overrides", host.name, ...problem.path])
        : fromDefaults
          ? configKey(["defaults", ...problem.path])
          : formatFieldPath(problem.path) || undefined;
    return configProblem({
        message: problem.message,
        hint: problem.hint ?? "see docs/host-config.md",
        host: host.name,
        field,
        ...(fromFile ? { file: host.file } : {}),
    });
}

function definedFields(fields: HostPatch): HostPatch {
    return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as HostPatch;
}
