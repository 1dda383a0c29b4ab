// From a host's validated config and its evaluated system to the resource's inputs.
import { hasChecks } from "../config/healthChecks";
import type { HostConfig } from "../config/hostSchema";
import type { EvaluatedSystem } from "../nix/evaluate";
import { NOT_EVALUATED, type HostInputs, type NotEvaluatedInputs } from "../provider/hostInputs";
import type { SecretFile } from "../config/secretFiles";


export function hostInputsOf(host: HostConfig, system: EvaluatedSystem, secrets?: Record<string, SecretFile>): HostInputs {
    const inputs: HostInputs = {
        name: host.name,
        address: host.address,
        // Only an explicit port is passed to ssh, so an ssh_config alias keeps its own Port.
        port: host.declared.port,
        user: host.user,
        identityFile: host.identityFile,
        proxyJump: host.proxyJump,
        hostKey: host.hostKey,
        knownHostsFile: host.knownHostsFile,
        sshConfigFile: host.sshConfigFile,
        sshOptions: host.sshOptions.length ? [...host.sshOptions] : undefined,
        insecureSkipHostKeyCheck: host.insecureSkipHostKeyCheck || undefined,
        connectTimeout: host.connectTimeout,
        confirmTimeout: host.confirmTimeout,
        reconnectTimeout: host.reconnectTimeout,
        keepGenerations: host.keepGenerations,
        deleteOlderThan: host.deleteOlderThan,
        gc: host.gc || undefined,
        // keepGoing alone matters too: it keeps a host whose activation left units failed.
        healthChecks: hasChecks(host.healthChecks) || host.healthChecks.keepGoing ? host.healthChecks : undefined,
        flake: host.flake,
        attribute: host.attribute,
        buildOn: host.buildOn,
        action: host.action,
        substituteOnDestination: host.substituteOnDestination,
        tags: [...host.tags],
        storePath: system.storePath,
        drvPath: system.drvPath,
        // The program marks each value secret (resources/host.ts); names and settings stay readable.
        secrets: secrets && Object.keys(secrets).length ? secrets : undefined,
    };
    // Pulumi drops undefined properties anyway; dropping them here keeps diffs exact.
    return Object.fromEntries(Object.entries(inputs).filter(([, value]) => value !== undefined)) as HostInputs;
}

/** A host's settings without an evaluated system, for a run that does not target it (see NOT_EVALUATED). */
export function notEvaluatedInputsOf(host: HostConfig, reason: string): NotEvaluatedInputs {
    const { storePath: _storePath, drvPath: _drvPath, ...settings } = hostInputsOf(host, { storePath: "", drvPath: "" });
    return { ...settings, [NOT_EVALUATED]: reason };
}

/** The connection part of a host's inputs (what a Hook on that host needs). */
export function connectionOf(inputs: HostInputs): Pick<
    HostInputs,
    "name" | "address" | "port" | "user" | "identityFile" | "proxyJump" | "hostKey" | "knownHostsFile" | "sshConfigFile" | "sshOptions" | "insecureSkipHostKeyCheck" | "connectTimeout"
> {
    const { name, address, port, user, identityFile, proxyJump, hostKey, knownHostsFile, sshConfigFile, sshOptions, insecureSkipHostKeyCheck, connectTimeout } = inputs;
    const picked = { name, address, port, user, identityFile, proxyJump, hostKey, knownHostsFile, sshConfigFile, sshOptions, insecureSkipHostKeyCheck, connectTimeout };
    return Object.fromEntries(Object.entries(picked).filter(([, value]) => value !== undefined)) as ReturnType<typeof connectionOf>;
}
