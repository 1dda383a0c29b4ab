// A build host: the system is evaluated here (as always), built on another host of the fleet, and
// its closure then goes from the build host to the target through the deployer, never into the
// deployer's own store:
//   nix copy --derivation --to ssh-ng://<build host> <drv>        (the derivation and its inputs)
//   ssh <build host> nix-store --realise <drv>                     (the build, in the build host's store)
//   nix copy --from ssh-ng://<build host> --to ssh-ng://<target> <system>
// The last command talks to two hosts with one NIX_SSHOPTS, so it gets `-F <generated ssh_config>`
// naming both hosts by alias, each riding on the master connection the deployer opened (and whose
// host key it checked) for it. Measured on Nix 2.8: the paths stream through and the local store
// gains nothing.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { FleetError, isFleetError, tail } from "../errors";
import type { ProcessRunner } from "../process/runner";
import type { SshConnection } from "../ssh/connection";
import { hostClosure } from "./closure";
import { copyPlan, runNixCopy, type CopyResult } from "./copy";
import { NIX_FLAGS } from "./flags";

export interface BuildHostContext {
    runner: ProcessRunner;
    /** The target's name: every error is the target's (its deploy failed), naming the build host. */
    host: string;
    log?: (message: string) => void;
}

const where = (connection: SshConnection): string => {
    const target = connection.target;
    return `${target.user}@${target.address}${target.port !== undefined ? `:${target.port}` : ""}`;
};

/** An error of the build host's connection, as the target's build failure that names the build host. */
function buildHostError(error: unknown, build: SshConnection, host: string): unknown {
    if (!isFleetError(error) || error.host === host) return error;
    const name = build.target.name;
    return new FleetError({
        phase: "build",
        host,
        outcome: error.outcome,
        message: `the build host ${name} (${where(build)}): ${error.message}`,
        hint: `${host} is built on ${name} (buildHost); for ${name}: ${error.hint ?? "check that it is up and reachable"}; or remove buildHost to build on this machine`,
        detail: error.detail,
    });
}

/** Sends the derivation (and the derivations and sources it needs) to the build host's store. */
export async function sendDerivation(build: SshConnection, drvPath: string, context: BuildHostContext): Promise<void> {
    const argv = ["nix", ...NIX_FLAGS, "copy", "--no-check-sigs", "--derivation", "--to", build.storeUri(), drvPath];
    const result = await runNixCopy(context.runner, argv, { env: { NIX_SSHOPTS: build.nixSshOpts() } }, context.log);
    if (result.code !== 0) {
        throw new FleetError({
            phase: "build",
            host: context.host,
            message: `sending the derivation ${drvPath} to the build host ${build.target.name} failed`,
            hint: `check that Nix runs on ${build.target.name} and its deploy user may add paths to its store (a non-root user must be a trusted Nix user there)`,
            detail: tail(result.stderr),
        });
    }
}

/** Realises the derivation in the build host's store; checks it gives the evaluated system. */
export async function realiseOnBuildHost(build: SshConnection, drvPath: string, storePath: string, context: BuildHostContext): Promise<void> {
    const result = await build.run(["nix-store", "--realise", drvPath], { asRoot: true });
    const outputs = result.stdout.split("\n").map((line) => line.trim()).filter(Boolean);
    if (result.code !== 0) {
        throw new FleetError({
            phase: "build",
            host: context.host,
            message: `building the system on the build host ${build.target.name} failed`,
            hint: `fix the build error above; on ${build.target.name}, nix-store --realise ${drvPath} reproduces it`,
            detail: tail(result.stderr),
        });
    }
    if (!outputs.includes(storePath)) {
        throw new FleetError({
            phase: "build",
            host: context.host,
            message: `the build host ${build.target.name} built ${outputs.join(", ") || "nothing"}, but the evaluation here gave ${storePath}`,
            hint: "the derivation sent is the one evaluated here, so this should not happen: check the build host's Nix (nix-store --realise on it)",
            detail: tail(result.stderr),
        });
    }
}

/**
 * The build phase on a build host: connect (host key checked as for any host), send the derivation,
 * build it there. Any failure is the target's `build` failure naming the build host.
 */
export async function buildOnBuildHost(build: SshConnection, drvPath: string, storePath: string, context: BuildHostContext): Promise<void> {
    const log = context.log ?? (() => undefined);
    try {
        log(`build on the build host ${build.target.name}: connect`);
        await build.open();
        log(`send ${drvPath} to ${build.target.name}`);
        await sendDerivation(build, drvPath, context);
        log(`nix-store --realise on ${build.target.name}`);
        await realiseOnBuildHost(build, drvPath, storePath, context);
    } catch (error) {
        throw buildHostError(error, build, context.host);
    }
}

export interface CopyBetweenOptions extends BuildHostContext {
    /** A private directory (the deploy's runtime directory) for the generated ssh_config. */
    runtimeDir: string;
    /** Let the target fetch what it can from its own binary caches. */
    substituteOnDestination?: boolean;
}

/** The store URI aliases of the build host and the target in the generated ssh_config. */
export const BUILD_ALIAS = "nixos-fleet-build-host";
export const TARGET_ALIAS = "nixos-fleet-target";

/**
 * The copy phase from a build host: the paths of the system's closure the target lacks go from the
 * build host's store to the target's, streamed through this machine (not into its store).
 */
export async function copyFromBuildHost(build: SshConnection, target: SshConnection, storePath: string, options: CopyBetweenOptions): Promise<CopyResult> {
    let closure;
    try {
        await build.open();
        closure = await hostClosure(build, storePath);
    } catch (error) {
        const named = buildHostError(error, build, options.host);
        throw isFleetError(named) ? new FleetError({ ...named.toJSON(), phase: "copy" }) : named;
    }
    const { toCopy, result } = await copyPlan(target, closure);
    if (toCopy.length === 0) return result;
    options.log?.(`copying ${toCopy.length} paths (${result.bytesCopied} bytes) from ${build.target.name} to ${options.host}`);
    await target.open();
    const config = join(options.runtimeDir, `copy-${options.host}.ssh_config`);
    writeFileSync(config, `# nixos-fleet: ${build.target.name} → ${options.host}, generated for one nix copy\n${build.storeAliasBlock(BUILD_ALIAS)}${target.storeAliasBlock(TARGET_ALIAS)}`, {
        mode: 0o600,
    });
    const argv = ["nix", ...NIX_FLAGS, "copy", "--no-check-sigs", "--from", `ssh-ng://${BUILD_ALIAS}`, "--to", `ssh-ng://${TARGET_ALIAS}`];
    if (options.substituteOnDestination) argv.push("--substitute-on-destination");
    argv.push(storePath);
    const copy = await runNixCopy(options.runner, argv, { env: { NIX_SSHOPTS: `-F ${config}` } }, options.log);
    if (copy.code !== 0) {
        throw new FleetError({
            phase: "copy",
            host: options.host,
            message: `nix copy of ${storePath} from the build host ${build.target.name} failed`,
            hint: /Permission denied|not allowed|trusted/i.test(copy.stderr)
                ? "a non-root deploy user must be a trusted Nix user on the host (nix.settings.trusted-users)"
                : `check that both ${build.target.name} and ${options.host} are reachable and have free disk space (the output above says more)`,
            detail: tail(copy.stderr),
        });
    }
    return result;
}
