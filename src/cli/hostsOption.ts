// `--hosts psi`, `--hosts rho,tau`, `--hosts @web`: the operator's habit, mapped onto the
// stack's hosts. Unknown names are errors that list the known ones.
import { selectHosts, type HostConfig } from "../config";
import { formatError, isFleetError } from "../errors";

export function parseHostsOption(value: string | undefined): string[] | undefined {
    if (value === undefined) return undefined;
    return value.split(",").map((part) => part.trim()).filter(Boolean);
}

/** The stack's hosts named by --hosts (all of them without it), in a stable order. */
export function hostsFromOption(stackHosts: readonly HostConfig[], value: string | undefined): HostConfig[] {
    const selectors = parseHostsOption(value);
    if (selectors === undefined) return [...stackHosts];
    return selectHosts(stackHosts, selectors);
}

/**
 * --hosts for exec and build, whose exit status 1 means "failed on some host": a selection that
 * names no host of the stack is a usage error instead (printed here; the caller exits with 2), so a
 * script can tell a typo in --hosts from a command that failed.
 */
export function hostsOrUsageError(stackHosts: readonly HostConfig[], value: string | undefined, stderr: (text: string) => void): HostConfig[] | undefined {
    try {
        return hostsFromOption(stackHosts, value);
    } catch (error) {
        if (!isFleetError(error)) throw error;
        stderr(`error: ${formatError(error)}\n`);
        return undefined;
    }
}
