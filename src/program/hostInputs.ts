// From a host's validated config and its evaluated system to the resource's inputs.
import { fieldInputsOf, type HostLookup } from "../config/hostFields";
import type { HostConfig } from "../config/hostSchema";
import type { EvaluatedSystem } from "../nix/evaluate";
import { NOT_EVALUATED, connectionInputsOf, type ConnectionInputs, type HostInputs, type NotEvaluatedInputs } from "../provider/hostInputs";
import type { SecretFile } from "../config/secretFiles";


/** The stack's hosts as a HostLookup (what buildHost names resolves against). */
export function hostLookup(hosts: readonly HostConfig[]): HostLookup {
    const byName = new Map(hosts.map((host) => [host.name, host]));
    return (name) => byName.get(name);
}

export function hostInputsOf(host: HostConfig, system: EvaluatedSystem, secrets?: Record<string, SecretFile>, hosts?: HostLookup): HostInputs {
    // Each host field as its declaration says (config/hostFields.ts); Pulumi drops undefined
    // properties anyway, leaving them out here keeps diffs exact.
    const inputs = {
        name: host.name,
        ...fieldInputsOf(host, host.declared, hosts),
        storePath: system.storePath,
        drvPath: system.drvPath,
        // The program marks each value secret (resources/host.ts); names and settings stay readable.
        secrets: secrets && Object.keys(secrets).length ? secrets : undefined,
    };
    return Object.fromEntries(Object.entries(inputs).filter(([, value]) => value !== undefined)) as unknown as HostInputs;
}

/** A host's settings without an evaluated system, for a run that does not target it (see NOT_EVALUATED). */
export function notEvaluatedInputsOf(host: HostConfig, reason: string, hosts?: HostLookup): NotEvaluatedInputs {
    const { storePath: _storePath, drvPath: _drvPath, ...settings } = hostInputsOf(host, { storePath: "", drvPath: "" }, undefined, hosts);
    return { ...settings, [NOT_EVALUATED]: reason };
}

/** The connection part of a host's inputs (what a Hook on that host needs). */
export function connectionOf(inputs: HostInputs): ConnectionInputs {
    return connectionInputsOf(inputs);
}
