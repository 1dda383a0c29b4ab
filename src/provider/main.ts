// Entry point of the pulumi-resource-nixos plugin (bin/pulumi-resource-nixos): serves the
// nixos:index:Host resource to the Pulumi engine over gRPC.
import * as provider from "@pulumi/pulumi/provider";
import { runProcess } from "../process/runner";
import { removeOnExit, sweepStaleRuntimeDirs } from "../process/runtimeDir";
import { connectEngineLogger, engineAddressFrom } from "./engineLog";
import { HostProvider } from "./hostProvider";
import { packageVersion } from "./version";


function main(args: string[]): Promise<void> {
    // Runtime directories of providers that were killed outright; ours go when we exit.
    sweepStaleRuntimeDirs();
    removeOnExit();
    const logger = connectEngineLogger(engineAddressFrom(args));
    return provider.main(new HostProvider({ runner: runProcess, logger, version: packageVersion() }), args);
}

main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`pulumi-resource-nixos: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
});
