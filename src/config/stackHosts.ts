// The hosts a stack deploys: host files, filtered by the stack's selectors, with the stack's
// defaults and overrides applied. This is what the Pulumi program calls.
import type { FleetError } from "../errors";
import { configProblem, isFleetConfigError, throwIfProblems } from "./configError";
import type { HostConfig } from "./hostSchema";
import { loadHostFiles, loadHostFilesSync } from "./loadHosts";
import { applyOverrides, selectHosts } from "./selectHosts";
import { configKey, type StackConfig } from "./stackConfig";
import { didYouMean } from "./suggest";

/**
 * Selects the stack's hosts from `all` and applies its settings. Selection uses the tags written
 * in the host files. Overrides and pins naming hosts that have no file are errors (a typo there
 * would otherwise be ignored); naming a known host the stack does not select is allowed.
 */
export function resolveStackHosts(all: readonly HostConfig[], stack: StackConfig, options: { file?: string } = {}): HostConfig[] {
    throwIfProblems(unknownHostProblems(stack, all.map((host) => host.name), options.file), "invalid \"nixos-fleet\" stack configuration");
    const problems: FleetError[] = [];
    const hosts: HostConfig[] = [];
    for (const host of selectHosts(all, stack.hosts)) {
        try {
            hosts.push(applyOverrides(host, stack.defaults, stack.overrides[host.name]));
        } catch (error) {
            if (!isFleetConfigError(error)) throw error;
            problems.push(...error.problems);
        }
    }
    throwIfProblems(problems, "invalid host configuration after applying stack settings");
    return hosts;
}

/** Loads the stack's hosts directory and resolves its hosts. */
export async function loadStackHosts(stack: StackConfig, options: { file?: string } = {}): Promise<HostConfig[]> {
    return resolveStackHosts(await loadHostFiles(stack.hostsDir, { baseDir: stack.baseDir }), stack, options);
}

export function loadStackHostsSync(stack: StackConfig, options: { file?: string } = {}): HostConfig[] {
    return resolveStackHosts(loadHostFilesSync(stack.hostsDir, { baseDir: stack.baseDir }), stack, options);
}

/** `overrides.<name>` and `pins.<name>` for names without a host file. */
export function unknownHostProblems(stack: Pick<StackConfig, "overrides" | "pins">, knownHosts: readonly string[], file?: string): FleetError[] {
    const known = [...knownHosts].sort();
    return (["overrides", "pins"] as const).flatMap((key) =>
        Object.keys(stack[key])
            .filter((name) => !known.includes(name))
            .map((name) =>
                configProblem({
                    message: `${key} for unknown host "${name}"`,
                    field: configKey([key, name]),
                    file,
                    hint: `${didYouMean(name, known)}known hosts: ${known.join(", ") || "(none)"}`,
                }),
            ),
    );
}
