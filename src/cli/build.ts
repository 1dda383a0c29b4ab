// `npm run build -- [--hosts psi,@web] [--stack S] [--parallel N] [--json]`: evaluates and builds
// the selected hosts' systems where their `buildOn` says, and prints each store path and closure
// size. Nothing is activated and no profile changes: with `buildOn: local` no host is contacted at
// all; with `buildOn: target` the flake's sources go to the host and the system is built in its
// store (which then holds it, as after a deploy's build phase), nothing more; with a `buildHost`
// the derivation evaluated here is built in the build host's store.
import { join } from "node:path";
import type { HostConfig, Pin } from "../config";
import { FleetError, formatError } from "../errors";
import { buildLocally, buildOnHost, sendFlake } from "../nix/build";
import { buildOnBuildHost } from "../nix/buildHost";
import { hostClosure, localClosure, type ClosurePath } from "../nix/closure";
import { evaluateSystems, type EvaluatedSystem } from "../nix/evaluate";
import { mapLimit } from "../process/pool";
import { runProcess, type ProcessRunner } from "../process/runner";
import { makeRuntimeDir, removeRuntimeDir } from "../process/runtimeDir";
import type { HostOutputs } from "../provider/hostInputs";
import { SshConnection } from "../ssh/connection";
import { parseCommandArgs, positiveInteger } from "./args";
import { targetFor } from "./generations";
import { hostsOrUsageError } from "./hostsOption";
import { bytes } from "./progress";
import { openFleetStack, recordedHosts, resolveStackName } from "./stack";

export const BUILD_USAGE = "npm run build -- [--hosts psi,rho|@tag] [--stack NAME] [--parallel N] [--json]";

const BUILD_HELP = `usage: ${BUILD_USAGE}

Evaluates and builds the systems of the selected hosts (all hosts of the stack without --hosts)
without deploying them: buildOn: local builds here and contacts no host; buildOn: target sends
the flake to the host and builds there (its store gains the system; nothing is activated, no
profile changes); a host with a buildHost is built in the build host's store. Prints each
system's store path and closure size.

options:
  --hosts LIST   hosts of the stack: names and @tags, comma-separated (default: all)
  --stack NAME   the stack (default: the selected stack)
  --parallel N   at most N builds at once (default: the stack's nixos-fleet:parallel, else all)
  --json         print a JSON array of {host, buildOn, status, storePath, closurePaths, closureBytes, …}
  -h, --help     print this help

exit status: 0 when every system was built; 1 when some could not be (named at the end); 2 for
a usage error.
`;

const OPTIONS = {
    hosts: { type: "string" },
    stack: { type: "string" },
    parallel: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
} as const;

export interface BuildArgs {
    hosts?: string;
    stack?: string;
    parallel?: number;
    json: boolean;
    help: boolean;
}

export function parseBuildArgs(args: readonly string[]): BuildArgs {
    const values = parseCommandArgs([...args], OPTIONS, BUILD_USAGE);
    return {
        hosts: values.hosts,
        stack: values.stack,
        parallel: positiveInteger(values.parallel, "--parallel"),
        json: values.json ?? false,
        help: values.help ?? false,
    };
}

export interface BuildResult {
    host: string;
    buildOn: "local" | "target";
    /** The host that built it (buildHost), when another one did. */
    buildHost?: string;
    status: "built" | "failed";
    storePath: string;
    closurePaths?: number;
    closureBytes?: number;
    durationMs: number;
    /** Set when rollback pinned the host: a deploy keeps the pinned system, not this one. */
    pinnedTo?: string;
    error?: string;
}

export interface BuildTarget {
    host: HostConfig;
    system: EvaluatedSystem;
    recorded?: HostOutputs;
    pin?: Pin;
    /** The host's build host (buildHost): its configuration, and its recorded state (how the last deploy reached it). */
    buildHost?: { host: HostConfig; recorded?: HostOutputs };
}

export interface BuildOptions {
    targets: readonly BuildTarget[];
    parallel?: number;
    runner: ProcessRunner;
    runtimeDir: string;
    /** Progress lines (`[psi] build … here`). */
    log: (line: string) => void;
}

/** Builds every target; never rejects for one host's failure. Results in the targets' order. */
export async function buildSystems(options: BuildOptions): Promise<BuildResult[]> {
    return mapLimit(options.targets, options.parallel, (target) => buildOne(target, options));
}

async function buildOne(target: BuildTarget, options: BuildOptions): Promise<BuildResult> {
    const { host, system } = target;
    const started = Date.now();
    const base = {
        host: host.name,
        buildOn: host.buildOn,
        ...(host.buildHost ? { buildHost: host.buildHost } : {}),
        storePath: system.storePath,
        ...(target.pin ? { pinnedTo: target.pin.storePath } : {}),
    };
    try {
        const closure = target.buildHost
            ? await buildOnItsBuildHost(target, target.buildHost, options)
            : host.buildOn === "local"
              ? await buildHere(target, options)
              : await buildOnTarget(target, options);
        const closureBytes = closure.reduce((sum, path) => sum + path.narSize, 0);
        options.log(`[${host.name}] built ${system.storePath}: ${closure.length} paths, ${bytes(closureBytes)}`);
        return { ...base, status: "built", closurePaths: closure.length, closureBytes, durationMs: Date.now() - started };
    } catch (error) {
        options.log(`[${host.name}] error: ${formatError(error).split("\n")[0]}`);
        return { ...base, status: "failed", durationMs: Date.now() - started, error: formatError(error) };
    }
}

async function buildHere({ host, system }: BuildTarget, options: BuildOptions): Promise<ClosurePath[]> {
    options.log(`[${host.name}] build ${system.storePath} here (buildOn: local)`);
    await buildLocally(options.runner, system.drvPath, host.name);
    return localClosure(options.runner, system.storePath, host.name);
}

async function buildOnTarget({ host, system, recorded }: BuildTarget, options: BuildOptions): Promise<ClosurePath[]> {
    const connection = new SshConnection(targetFor(host, recorded), { runner: options.runner, runtimeDir: options.runtimeDir });
    try {
        options.log(`[${host.name}] send flake ${host.flake} and build on the host (buildOn: target)`);
        const flakePath = await sendFlake(options.runner, connection, host.flake);
        const built = await buildOnHost(connection, flakePath, host.attribute);
        if (built !== system.storePath) {
            throw new FleetError({
                phase: "build",
                host: host.name,
                message: `the host built ${built}, but the evaluation here gave ${system.storePath}`,
                hint: "the flake evaluates differently on the host (impure inputs?); deploy with buildOn: local",
            });
        }
        return await hostClosure(connection, built);
    } finally {
        await connection.close().catch(() => undefined);
    }
}

let buildHostConnections = 0;

/** buildHost: the derivation evaluated here is built on the build host (as a deploy's build phase does); its store then holds the system. */
async function buildOnItsBuildHost({ host, system }: BuildTarget, buildHost: NonNullable<BuildTarget["buildHost"]>, options: BuildOptions): Promise<ClosurePath[]> {
    // Its own directory (short: it holds a unix socket): builds for several hosts may share one build host.
    const connection = new SshConnection(targetFor(buildHost.host, buildHost.recorded), { runner: options.runner, runtimeDir: join(options.runtimeDir, `b${++buildHostConnections}`) });
    try {
        options.log(`[${host.name}] build ${system.storePath} on the build host ${buildHost.host.name} (buildHost)`);
        await buildOnBuildHost(connection, system.drvPath, system.storePath, { runner: options.runner, host: host.name });
        return await hostClosure(connection, system.storePath);
    } finally {
        await connection.close().catch(() => undefined);
    }
}

const shortPath = (path: string): string => path.replace(/^\/nix\/store\/[a-z0-9]{32}-/, "");

/** The table for people, then which hosts failed. */
export function renderBuildSummary(results: readonly BuildResult[]): string {
    const header = ["host", "built on", "store path", "closure", "time"];
    const rows = results.map((r) => [
        r.host,
        r.buildHost ?? (r.buildOn === "local" ? "here" : "host"),
        r.storePath,
        r.status === "built" ? `${r.closurePaths} paths, ${bytes(r.closureBytes ?? 0)}` : `FAILED: ${firstLine(r.error)}`,
        `${(r.durationMs / 1000).toFixed(1)}s`,
    ]);
    const widths = header.map((_, i) => Math.max(header[i]!.length, ...rows.map((row) => row[i]!.length)));
    const line = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd();
    const out = [line(header), ...rows.map(line)];
    for (const r of results.filter((r) => r.pinnedTo !== undefined && r.pinnedTo !== r.storePath)) {
        out.push(`note: ${r.host} is pinned to ${shortPath(r.pinnedTo!)} by rollback: a deploy keeps that system until \`npm run rollback -- --clear --hosts ${r.host}\``);
    }
    const failed = results.filter((r) => r.status === "failed");
    out.push("", `build: ${results.length - failed.length} of ${results.length} system${results.length === 1 ? "" : "s"} built; no host was changed`);
    if (failed.length) {
        out.push(`failed: ${failed.map((r) => r.host).join(", ")}`);
        for (const r of failed) out.push(...(r.error ?? "").split("\n").map((l) => `  ${l}`));
    }
    return out.join("\n");
}

function firstLine(error: string | undefined): string {
    return (error ?? "").split("\n")[0]!.replace(/^host \S+: /, "");
}

export async function buildCommand(args: string[]): Promise<number> {
    let parsed: BuildArgs;
    try {
        parsed = parseBuildArgs(args);
    } catch (error) {
        process.stderr.write(`error: ${formatError(error)}\n`);
        return 2;
    }
    if (parsed.help) {
        process.stdout.write(BUILD_HELP);
        return 0;
    }
    const log = (line: string) => (parsed.json ? process.stderr : process.stdout).write(`${line}\n`);
    const projectRoot = process.cwd();
    const stackName = await resolveStackName(parsed.stack, projectRoot);
    const fleet = await openFleetStack(stackName, projectRoot);
    const hosts = hostsOrUsageError(fleet.hosts, parsed.hosts, (text) => process.stderr.write(text));
    if (hosts === undefined) return 2;
    const started = Date.now();
    const systems = await evaluateSystems(
        hosts.map((host) => ({ name: host.name, flake: host.flake, attribute: host.attribute })),
        { runner: runProcess, cwd: projectRoot },
    );
    log(`evaluate: ${hosts.length} host(s) in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    const recorded = hosts.some((host) => host.buildOn === "target" || host.buildHost) ? await recordedHosts(fleet.stack) : new Map<string, HostOutputs>();
    const buildHostOf = (host: HostConfig) => {
        const config = host.buildHost === undefined ? undefined : fleet.hosts.find((candidate) => candidate.name === host.buildHost);
        return config ? { buildHost: { host: config, recorded: recorded.get(config.name) } } : {};
    };
    const runtimeDir = makeRuntimeDir();
    let results: BuildResult[];
    try {
        results = await buildSystems({
            targets: hosts.map((host) => ({ host, system: systems.get(host.name)!, recorded: recorded.get(host.name), pin: fleet.settings.pins[host.name], ...buildHostOf(host) })),
            parallel: parsed.parallel ?? fleet.settings.parallel,
            runner: runProcess,
            runtimeDir,
            log,
        });
    } finally {
        removeRuntimeDir(runtimeDir);
    }
    if (parsed.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    else process.stdout.write(`\n${renderBuildSummary(results)}\n`);
    return results.every((r) => r.status === "built") ? 0 : 1;
}
