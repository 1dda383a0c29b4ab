// The hosts a stack deploys: host files, filtered by the stack's selectors, with the stack's
// defaults and overrides applied. This is what the Pulumi program calls.
import * as fs from "node:fs";
import * as path from "node:path";
import type { FleetError } from "../errors";
import { configProblem, isFleetConfigError, throwIfProblems } from "./configError";
import type { HostConfig } from "./hostSchema";
import { loadHostFiles, loadHostFilesSync } from "./loadHosts";
import { applyOverrides, selectHosts } from "./selectHosts";
import { configKey, type StackConfig } from "./stackConfig";
import { didYouMean } from "./suggest";

/**
 * Selects the stack's hosts from `all` and applies its settings. Selection uses the tags written
 * in the host files. Overrides and pins naming hosts that have no file are errors (a typo there
 * would otherwise be ignored); naming a known host the stack does not select is allowed.
 */
export function resolveStackHosts(all: readonly HostConfig[], stack: StackConfig, options: { file?: string } = {}): HostConfig[] {
    throwIfProblems(unknownHostProblems(stack, all.map((host) => host.name), options.file), "invalid \"nixos-fleet\" stack configuration");
    const problems: FleetError[] = [];
    const hosts: HostConfig[] = [];
    for (const host of selectHosts(all, stack.hosts)) {
        try {
            hosts.push(applyOverrides(host, stack.defaults, stack.overrides[host.name]));
        } catch (error) {
            if (!isFleetConfigError(error)) throw error;
            problems.push(...error.problems);
        }
    }
    throwIfProblems(problems, "invalid host configuration after applying stack settings");
    throwIfProblems(buildHostProblems(hosts, all, stack, options.file), "invalid host configuration");
    return hosts;
}

/**
 * A host's buildHost must name a host of this stack (its connection settings, with this stack's
 * layers, are then known and checked) and cannot be combined with buildOn: target (which builds on
 * the host itself). A host may name itself: it then builds from the derivation evaluated here in its
 * own store (docs/operations: Build host).
 */
export function buildHostProblems(hosts: readonly HostConfig[], fileHosts: readonly HostConfig[], stack: Pick<StackConfig, "overrides">, file?: string): FleetError[] {
    const names = hosts.map((host) => host.name);
    const problems: FleetError[] = [];
    for (const host of hosts) {
        const buildHost = host.buildHost;
        if (buildHost === undefined) continue;
        const where = fieldLocation(host, "buildHost", fileHosts, stack, file);
        if (!names.includes(buildHost)) {
            problems.push(
                configProblem({
                    message: `buildHost "${buildHost}" is not a host of this stack`,
                    hint: `${didYouMean(buildHost, names)}the build host must be one of the stack's hosts (nixos-fleet:hosts): ${[...names].sort().join(", ")}`,
                    host: host.name,
                    ...where,
                }),
            );
        } else if (host.buildOn === "target") {
            problems.push(
                configProblem({
                    message: `buildHost "${buildHost}" contradicts buildOn: target`,
                    hint: "buildOn: target builds on the host itself, buildHost on the host it names: keep one of them",
                    host: host.name,
                    ...where,
                }),
            );
        }
    }
    return problems;
}

/** Where a host's field was set: the stack override, the host file (with its line), or stack defaults. */
function fieldLocation(host: HostConfig, field: "buildHost", fileHosts: readonly HostConfig[], stack: Pick<StackConfig, "overrides">, file?: string): { file?: string; line?: number; field: string } {
    if (stack.overrides[host.name]?.[field] !== undefined) return { file, field: configKey(["overrides", host.name, field]) };
    if (fileHosts.find((h) => h.name === host.name)?.declared[field] !== undefined) {
        return { file: path.relative(host.baseDir, host.file) || host.file, line: topLevelKeyLine(host.file, field), field };
    }
    return { file, field: configKey(["defaults", field]) };
}

/** The line of a top-level key in a YAML file (undefined when the file cannot be read). */
function topLevelKeyLine(file: string, key: string): number | undefined {
    try {
        const index = fs.readFileSync(file, "utf8").split("\n").findIndex((line) => new RegExp(`^["']?${key}["']?\\s*:`).test(line));
        return index >= 0 ? index + 1 : undefined;
    } catch {
        return undefined;
    }
}

export interface LoadStackHostsOptions {
    /** The stack's config file, for messages. */
    file?: string;
    /** Check that the stack's hosts' key files exist here (default true; off for other stacks' hosts). */
    checkFiles?: boolean;
}

/** Loads the stack's hosts directory and resolves its hosts. */
export async function loadStackHosts(stack: StackConfig, options: LoadStackHostsOptions = {}): Promise<HostConfig[]> {
    const all = await loadHostFiles(stack.hostsDir, { baseDir: stack.baseDir });
    return checkedFiles(resolveStackHosts(all, stack, options), all, stack, options);
}

export function loadStackHostsSync(stack: StackConfig, options: LoadStackHostsOptions = {}): HostConfig[] {
    const all = loadHostFilesSync(stack.hostsDir, { baseDir: stack.baseDir });
    return checkedFiles(resolveStackHosts(all, stack, options), all, stack, options);
}

function checkedFiles(hosts: HostConfig[], all: readonly HostConfig[], stack: StackConfig, options: LoadStackHostsOptions): HostConfig[] {
    if (options.checkFiles === false) return hosts;
    throwIfProblems(missingFileProblems(hosts, all, stack, options.file), "invalid host configuration");
    return hosts;
}

/** Files ssh reads for a host that must exist on the deploying machine (sshConfigFile may be generated later). */
const REQUIRED_FILES = [
    ["identityFile", "ssh private key"],
    ["knownHostsFile", "known_hosts file"],
] as const;

/**
 * A missing key or known_hosts file would surface only as a puzzling ssh failure mid-deploy, so it
 * is a config problem naming the file, and where it was set: the host file or the stack setting.
 */
export function missingFileProblems(hosts: readonly HostConfig[], fileHosts: readonly HostConfig[], stack: Pick<StackConfig, "overrides">, file?: string): FleetError[] {
    const problems: FleetError[] = [];
    for (const host of hosts) {
        for (const [field, what] of REQUIRED_FILES) {
            const value = host[field];
            const reason = value === undefined ? undefined : unreadableFile(value);
            if (value === undefined || reason === undefined) continue;
            const fromFile = stack.overrides[host.name]?.[field] === undefined && fileHosts.find((h) => h.name === host.name)?.declared[field] !== undefined;
            const fromOverride = stack.overrides[host.name]?.[field] !== undefined;
            problems.push(
                configProblem({
                    message: `${field} ${value} ${reason}`,
                    hint: `the ${what} must exist on the deploying machine; fix the path or create the file`,
                    host: host.name,
                    ...(fromFile
                        ? { file: path.relative(host.baseDir, host.file) || host.file, field }
                        : { file, field: configKey(fromOverride ? ["overrides", host.name, field] : ["defaults", field]) }),
                }),
            );
        }
    }
    return problems;
}

function unreadableFile(file: string): string | undefined {
    try {
        if (!fs.statSync(file).isFile()) return "is not a file";
        fs.accessSync(file, fs.constants.R_OK);
        return undefined;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
    }
}

/** `overrides.<name>` and `pins.<name>` for names without a host file. */
export function unknownHostProblems(stack: Pick<StackConfig, "overrides" | "pins">, knownHosts: readonly string[], file?: string): FleetError[] {
    const known = [...knownHosts].sort();
    return (["overrides", "pins"] as const).flatMap((key) =>
        Object.keys(stack[key])
            .filter((name) => !known.includes(name))
            .map((name) =>
                configProblem({
                    message: `${key} for unknown host "${name}"`,
                    field: configKey([key, name]),
                    file,
                    hint: `${didYouMean(name, known)}known hosts: ${known.join(", ") || "(none)"}`,
                }),
            ),
    );
}
