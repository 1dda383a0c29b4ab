// Program side of the nixos:index:Host resource: one NixOS server, deployed by nixos-fleet's
// provider (src/provider). Its inputs are the host's connection settings and the system store
// path the evaluation produced; a change to either updates the host in place.
import * as pulumi from "@pulumi/pulumi";
import type { DeploymentRecord, HostInputs, LastDeploy, NotEvaluatedInputs } from "../provider/hostInputs";

export const HOST_TYPE = "nixos:index:Host";

/** The arguments of a Host: everything the provider needs to deploy it. */
export type HostArgs = { [K in keyof HostInputs]: pulumi.Input<HostInputs[K]> };

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

    constructor(name: string, args: HostArgs | NotEvaluatedHostArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            HOST_TYPE,
            name,
            {
                // Every output is declared, also for a host registered without an evaluated system.
                storePath: undefined,
                ...args,
                generation: undefined,
                previousGeneration: undefined,
                activatedAt: undefined,
                nixosVersion: undefined,
                runningStorePath: undefined,
                bootedStorePath: undefined,
                profileStorePath: undefined,
                history: undefined,
                lastDeploy: undefined,
            },
            opts,
        );
    }
}
