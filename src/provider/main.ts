// Entry point of the pulumi-resource-nixos plugin (bin/pulumi-resource-nixos): serves the
// nixos:index:Host resource to the Pulumi engine over gRPC.
import * as provider from "@pulumi/pulumi/provider";
import { runProcess } from "../process/runner";
import { removeOnExit, sweepStaleRuntimeDirsInBackground } from "../process/runtimeDir";
import type { ConfiguredInputs } from "./adopt";
import { connectEngineLogger, engineAddressFrom } from "./engineLog";
import { DeferredProvider } from "./deferredProvider";
import { exitWhenOrphaned } from "./orphan";
import { installImportShim } from "./importShim";
import { packageVersion } from "./version";

/**
 * `pulumi import` reads the stack's config from the project directory (the engine starts the
 * provider there; the only place this plugin reaches into the program's layer). Loaded when an
 * import asks: the host-file reader (YAML and all) is not needed to start serving previews.
 */
function configuredInputsFrom(projectRoot: string): ConfiguredInputs {
    return async (stack, id, resourceName) => {
        const { configuredHostInputs } = await import("../program/adoption");
        return configuredHostInputs(projectRoot)(stack, id, resourceName);
    };
}

/**
 * How long a Host's check waits for the program's providerInfo when the engine delivers the check
 * first (by milliseconds, as a rule): a program that never asks (`pulumi import`) costs this once.
 */
const RUN_KIND_WAIT_MS = 500;

function main(args: string[]): Promise<void> {
    removeOnExit();
    // Runtime directories of providers that were killed outright; ours go when we exit.
    void sweepStaleRuntimeDirsInBackground();
    const logger = connectEngineLogger(engineAddressFrom(args));
    installImportShim();
    const configuredInputs = configuredInputsFrom(process.cwd());
    const version = packageVersion();
    // The Host resource's code loads after the port is out (deferredProvider.ts).
    const hosts = new DeferredProvider(version, async () => {
        const { HostProvider } = await import("./hostProvider");
        const { filePackageCache } = await import("../nix/packageCache");
        const { cacheDir } = await import("../nix/evalCache");
        return new HostProvider({ runner: runProcess, logger, version, configuredInputs, packageCache: filePackageCache(cacheDir()) });
    }, { runKindWaitMs: RUN_KIND_WAIT_MS });
    exitWhenOrphaned({
        parentPid: process.ppid,
        cancel: () => hosts.cancel(),
        callsUnderWay: () => hosts.callsUnderWay,
    });
    return provider.main(hosts, args);
}

main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`pulumi-resource-nixos: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
});
