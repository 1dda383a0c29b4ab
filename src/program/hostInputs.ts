// From a host's validated config and its evaluated system to the resource's inputs.
import { fieldInputsOf } from "../config/hostFields";
import type { HostConfig } from "../config/hostSchema";
import type { EvaluatedSystem } from "../nix/evaluate";
import { NOT_EVALUATED, connectionInputsOf, type ConnectionInputs, type HostInputs, type NotEvaluatedInputs } from "../provider/hostInputs";
import type { SecretFile } from "../config/secretFiles";


export function hostInputsOf(host: HostConfig, system: EvaluatedSystem, secrets?: Record<string, SecretFile>): HostInputs {
    // Each host field as its declaration says (config/hostFields.ts); Pulumi drops undefined
    // properties anyway, leaving them out here keeps diffs exact.
    const inputs = {
        name: host.name,
        ...fieldInputsOf(host, host.declared),
        storePath: system.storePath,
        drvPath: system.drvPath,
        // The program marks each value secret (resources/host.ts); names and settings stay readable.
        secrets: secrets && Object.keys(secrets).length ? secrets : undefined,
    };
    return Object.fromEntries(Object.entries(inputs).filter(([, value]) => value !== undefined)) as unknown as HostInputs;
}

/** A host's settings without an evaluated system, for a run that does not target it (see NOT_EVALUATED). */
export function notEvaluatedInputsOf(host: HostConfig, reason: string): NotEvaluatedInputs {
    const { storePath: _storePath, drvPath: _drvPath, ...settings } = hostInputsOf(host, { storePath: "", drvPath: "" });
    return { ...settings, [NOT_EVALUATED]: reason };
}

/** The connection part of a host's inputs (what a Hook on that host needs). */
export function connectionOf(inputs: HostInputs): ConnectionInputs {
    return connectionInputsOf(inputs);
}
