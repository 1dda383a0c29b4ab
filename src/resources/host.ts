// Program side of the nixos:index:Host resource: one NixOS server, deployed by nixos-fleet's
// provider (src/provider). Its inputs are the host's connection settings and the system store
// path the evaluation produced; a change to either updates the host in place. Any input may be
// an Output of another resource (e.g. the address and host key of a server created in the same
// program): the preview then says the host is deployed once that server exists.
import * as pulumi from "./pulumiSdk";
import type { z } from "zod";
import { HOST_FIELDS, INPUT_DEFAULT_FIELDS } from "../config/hostFields";
import { HOST_DEFAULTS } from "../config/hostSchema";
import type { SecretFile } from "../config/secretFiles";
import type { DeploymentRecord, HostInputs, LastDeploy, NotEvaluatedInputs, RollbackMark, Unreachable, hostInputsSchema } from "../provider/hostInputs";
import { startProvider } from "./providerStart";
import { HOST_TYPE } from "./types";

export { HOST_TYPE } from "./types";

/** A value any part of which may be an Input (an Output of another resource, a promise): Pulumi resolves them all. */
export type DeepInput<T> = pulumi.Input<Inputs<T>>;
type Inputs<T> = T extends string | number | boolean | null | undefined
    ? T
    : T extends readonly (infer E)[]
      ? DeepInput<E>[]
      : { [K in keyof T]: DeepInput<T[K]> };

/** What a program may pass: the provider's input rules before defaults (zod's input side). */
type ProgramInputs = z.input<typeof hostInputsSchema>;
type AllArgs = { [K in keyof ProgramInputs]: DeepInput<ProgramInputs[K]> };

/**
 * The arguments of a Host: everything the provider needs to deploy it. `name` defaults to the
 * resource name; `user`, `buildOn`, `action`, `substituteOnDestination` and `tags` (the host fields
 * marked inputDefault), the parts of `healthChecks` and a secret file's owner, group, mode and
 * uploadAt to the same defaults as host files (docs/host-config.md); the provider's check fills
 * them in. `flake`, `attribute`, `storePath` and `drvPath` are what `evaluateSystem` returns.
 * Any value, also inside a list or mapping, may be an Output (e.g. a secret's value from
 * `config.requireSecret`).
 */
export type HostArgs = Omit<AllArgs, "name"> & { name?: AllArgs["name"] };

/** The defaults the Host sends for fields left out (the provider fills the same ones in: a preview shows them). */
const INPUT_DEFAULTS = Object.fromEntries(INPUT_DEFAULT_FIELDS.map((field) => [field, HOST_FIELDS[field].default]));

/** Args without the keys set to undefined, so an explicit `user: undefined` still gets the default. */
function definedOnly<T extends object>(args: T): Partial<T> {
    return Object.fromEntries(Object.entries(args).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/**
 * The Host's arguments with the given input keys as secrets (their values came from secret
 * config) and each secret file's value a secret of its own: the names and settings of secret files
 * stay readable in a preview, their values show as [secret] and are encrypted in the state.
 */
export function secretHostArgs<T extends HostInputs | NotEvaluatedInputs>(
    inputs: T,
    secretKeys: readonly string[],
    secretFileFields: Readonly<Record<string, readonly string[]>> = {},
): { [K in keyof T]: pulumi.Input<T[K]> } {
    const args: Record<string, unknown> = { ...inputs };
    for (const key of secretKeys) if (args[key] !== undefined) args[key] = pulumi.secret(args[key]);
    const files = (inputs as Partial<HostInputs>).secrets;
    if (files && !secretKeys.includes("secrets")) {
        args.secrets = Object.fromEntries(Object.entries(files).map(([name, file]) => [name, secretFileArgs(file, secretFileFields[name] ?? [])]));
    }
    return args as { [K in keyof T]: pulumi.Input<T[K]> };
}

/** One secret file's settings with its value, and the settings set with --secret, as secrets. */
function secretFileArgs(file: SecretFile, secretFields: readonly string[]): Record<string, unknown> {
    const args: Record<string, unknown> = { ...file, value: pulumi.secret(file.value) };
    for (const field of secretFields) if (field !== "value" && args[field] !== undefined) args[field] = pulumi.secret(args[field]);
    return args;
}

/**
 * The Host's `secrets` with each file's value a secret, whoever calls: a program that passes
 * plain values (the library's Host, not only Fleet's secretHostArgs) must not get them written in
 * plaintext into the state, nor shown in a preview. The names and settings stay readable; an
 * Output or promise for the whole map or one file becomes a secret as a whole.
 */
export function secretFilesInput(secrets: unknown): unknown {
    if (secrets === undefined || secrets === null) return secrets;
    if (pulumi.Output.isInstance(secrets) || secrets instanceof Promise || typeof secrets !== "object") return pulumi.secret(secrets);
    return Object.fromEntries(
        Object.entries(secrets as Record<string, unknown>).map(([name, file]) => [
            name,
            file === null || typeof file !== "object" || pulumi.Output.isInstance(file) || file instanceof Promise
                ? pulumi.secret(file)
                : "value" in file
                  ? { ...file, value: pulumi.secret((file as { value: unknown }).value) }
                  : file,
        ]),
    );
}

/** A host a targeted run does not deploy: registered so the engine keeps (and reports) its recorded state. */
export type NotEvaluatedHostArgs = { [K in keyof NotEvaluatedInputs]: pulumi.Input<NotEvaluatedInputs[K]> };

export class Host extends pulumi.CustomResource {
    /** Store path of the system deployed (or, after a refresh, the one the host really runs). */
    declare readonly storePath: pulumi.Output<string>;
    /** System profile generation deployed. */
    declare readonly generation: pulumi.Output<number | null>;
    declare readonly previousGeneration: pulumi.Output<number | null>;
    declare readonly activatedAt: pulumi.Output<string>;
    declare readonly nixosVersion: pulumi.Output<string | null>;
    declare readonly runningStorePath: pulumi.Output<string | null>;
    declare readonly bootedStorePath: pulumi.Output<string | null>;
    /** The recorded deployments, newest first, each with its revision, operator, time and stack update. */
    declare readonly history: pulumi.Output<DeploymentRecord[]>;
    declare readonly lastDeploy: pulumi.Output<LastDeploy>;
    /** Set while the host runs a system `rollback` pinned: to what, when, by whom. */
    declare readonly rolledBack: pulumi.Output<RollbackMark | null>;
    /** When the stack last reached the host. */
    declare readonly lastSeenAt: pulumi.Output<string | null>;
    /** Set when the last refresh could not reach the host (its recorded state was kept). */
    declare readonly unreachable: pulumi.Output<Unreachable | null>;

    constructor(name: string, args: HostArgs | NotEvaluatedHostArgs, opts?: pulumi.CustomResourceOptions) {
        // The provider hears whether this run is a preview or an update before this Host's check.
        void startProvider();
        const given = definedOnly(args) as Record<string, unknown>;
        if (given.secrets !== undefined) given.secrets = secretFilesInput(given.secrets);
        super(
            HOST_TYPE,
            name,
            {
                // Every output is declared, also for a host registered without an evaluated system.
                storePath: undefined,
                name,
                ...structuredClone(INPUT_DEFAULTS),
                ...given,
                generation: undefined,
                previousGeneration: undefined,
                activatedAt: undefined,
                nixosVersion: undefined,
                runningStorePath: undefined,
                bootedStorePath: undefined,
                profileStorePath: undefined,
                history: undefined,
                lastDeploy: undefined,
                rolledBack: undefined,
                lastSeenAt: undefined,
                unreachable: undefined,
            },
            opts,
        );
    }
}
