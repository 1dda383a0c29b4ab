// `--hosts psi`, `--hosts rho,tau`, `--hosts @web`: the operator's habit, mapped onto the
// stack's hosts. Unknown names are errors that list the known ones.
import { selectHosts, type HostConfig } from "../config";

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
