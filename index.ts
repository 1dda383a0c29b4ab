// nixos-fleet: every host of this stack as a nixos:index:Host resource, through the library's
// Fleet (src/program/fleetResources.ts): the stack's config (Pulumi.<stack>.yaml, namespace
// nixos-fleet) says which hosts belong to it; hosts/*.yaml describe them.
import { getStack } from "@pulumi/pulumi/metadata";
import { isDryRun } from "@pulumi/pulumi/runtime/settings";
import { runProcess } from "./src/process/runner";
import { readStackHistoryOnce } from "./src/program/provenance";
import { startProvider } from "./src/resources/providerStart";

// First thing: the engine starts the provider plugin while the program loads (Fleet's modules are
// required below, not imported at the top) and evaluates the fleet.
void startProvider();
// An update's records carry its number, from the stack's history (~0.3 s of `pulumi stack
// history`): read while the rest loads and evaluates; Fleet.create takes this read.
if (!isDryRun()) void readStackHistoryOnce({ runner: runProcess, projectRoot: process.cwd(), stackName: getStack() });

export = async () => {
    const { Fleet, FleetReportedError } = await import("./src/program/fleetResources");
    try {
        return (await Fleet.create()).outputs;
    } catch (error) {
        // Already reported (file, line, host, phase, hint). Exiting with the SDK's "error already
        // reported" code ends the run at once; a thrown error would leave the SDK's gRPC channels
        // holding the process open for ~20 s.
        if (error instanceof FleetReportedError) process.exit(32);
        throw error;
    }
};
