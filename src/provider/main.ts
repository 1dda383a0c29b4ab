// Entry point of the pulumi-resource-nixos plugin (bin/pulumi-resource-nixos): serves the
// nixos:index:Host resource to the Pulumi engine over gRPC.
import * as provider from "@pulumi/pulumi/provider";
import { runProcess } from "../process/runner";
import { removeOnExit, sweepStaleRuntimeDirs } from "../process/runtimeDir";
import { connectEngineLogger, engineAddressFrom } from "./engineLog";
import { HostProvider } from "./hostProvider";
import { installImportShim } from "./importShim";
import { configuredHostInputs } from "../program/adoption";
import { packageVersion } from "./version";


function main(args: string[]): Promise<void> {
    // Runtime directories of providers that were killed outright; ours go when we exit.
    sweepStaleRuntimeDirs();
    removeOnExit();
    const logger = connectEngineLogger(engineAddressFrom(args));
    installImportShim();
    // The engine starts the provider in the project directory: `pulumi import` reads the stack's
    // config from there (the only place this plugin reaches into the program's layer).
    const configuredInputs = configuredHostInputs(process.cwd());
    return provider.main(new HostProvider({ runner: runProcess, logger, version: packageVersion(), configuredInputs }), args);
}

main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`pulumi-resource-nixos: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
});
