// `npm run generations -- [--hosts psi,rho|@tag] [--stack S] [--json]`: every host's system
// generations as the host lists them, with store path, NixOS version, which one runs, which one
// boots, and which stack update deployed it. One SSH master connection per host, hosts in parallel.
import { parseArgs } from "node:util";
import { makeRuntimeDir, removeRuntimeDir } from "../process/runtimeDir";
import type { HostConfig } from "../config";
import {
    readGenerations,
    recordsOf,
    stackVersionOf,
    type HostGeneration,
    type StackUpdate,
} from "../deploy/generations";
import { formatError } from "../errors";
import { runProcess, type ProcessRunner } from "../process/runner";
import { hostInputsOf } from "../program/hostInputs";
import { describeRevision } from "../program/provenance";
import { isSecretValue } from "../provider/secretMarkers";
import { sshTargetOf, type DeploymentRecord, type FlakeRevision, type HostOutputs } from "../provider/hostInputs";
import { SshConnection } from "../ssh/connection";
import type { SshTarget } from "../ssh/target";
import { hostsFromOption } from "./hostsOption";
import { openFleetStack, recordedHosts, resolveStackName, stackUpdates } from "./stack";

export const GENERATIONS_USAGE = `usage: npm run generations -- [--hosts psi,rho|@tag] [--stack S] [--json]

Lists each host's system generations (nix-env --list-generations of /nix/var/nix/profiles/system)
with store path, NixOS version, which one is running, which one boots, and the stack update that
deployed it ("-": not deployed by this stack, e.g. by hand). Stack updates are numbered as in
Pulumi Cloud: 1, 2, 3, … oldest first over the whole history, refreshes included (a file://
backend's own history shows version 0 for all of them, so the numbers are derived from its order).
A number never changes once given; rollback --to-stack-version takes the same numbers.

options:
  --hosts LIST   hosts of the stack to list: names and @tags, comma-separated (default: all)
  --stack S      the stack (default: the selected stack, see: npm run pulumi -- stack select)
  --json         print a JSON array of {host, generations: [...], error?}; each generation the
                 stack deployed has its stackVersion, deployedAt, operator and flake revision
  -h, --help     print this help

exit status: 0 when every host was read, 1 when some host could not be (its entry names the
error; the others are still listed), 2 for a usage error.
`;

export interface GenerationRow {
    generation: number;
    date: string;
    storePath: string | null;
    nixosVersion: string | null;
    /** The profile's current generation: the one the host boots into. */
    current: boolean;
    running: boolean;
    booted: boolean;
    /** The stack update that deployed this generation, null when this stack did not. */
    stackVersion: number | null;
    /** When the stack deployed it, who, and from which flake revision (its deployment record); null when not recorded. */
    deployedAt: string | null;
    operator: string | null;
    flake: FlakeRevision | null;
}

export interface HostReport {
    host: string;
    generations: GenerationRow[];
    /** The formatted FleetError when the host could not be read. */
    error?: string;
}

/** How to reach a host: the recorded state's inputs (what the last deploy used), else the host's config. */
export function targetFor(host: HostConfig, recorded: HostOutputs | undefined): SshTarget {
    // A connection setting recorded as a secret is only ciphertext in the exported state: the
    // configuration (its secrets decrypted) says how to connect then.
    const target = recorded ? sshTargetOf(recorded) : undefined;
    if (target && !Object.values(target).some(isSecretValue)) return target;
    // The same mapping the program uses for a deploy; the system paths play no part in it.
    // Only the connection matters here: the build host is left out (it is not looked up).
    return sshTargetOf(hostInputsOf({ ...host, buildHost: undefined }, { storePath: "", drvPath: "" }));
}

export function rowsOf(generations: HostGeneration[], history: readonly DeploymentRecord[], updates: readonly StackUpdate[]): GenerationRow[] {
    return generations.map((g) => {
        const made = recordsOf(g, history)[0];
        return {
            generation: g.generation,
            date: g.date,
            storePath: g.storePath ?? null,
            nixosVersion: g.nixosVersion ?? null,
            current: g.current,
            running: g.running,
            booted: g.booted,
            stackVersion: stackVersionOf(g, history, updates) ?? null,
            deployedAt: made?.activatedAt ?? null,
            operator: made?.operator ?? null,
            flake: made?.flake ?? null,
        };
    });
}

export interface CollectOptions {
    hosts: readonly HostConfig[];
    recorded: ReadonlyMap<string, HostOutputs>;
    updates: readonly StackUpdate[];
    runner: ProcessRunner;
    /** Private directory for control sockets (one per host inside it). */
    runtimeDir: string;
}

/** Reads every host in parallel, one master connection each. Never rejects for a host's failure. */
export async function collectReports(options: CollectOptions): Promise<HostReport[]> {
    return Promise.all(
        options.hosts.map(async (host): Promise<HostReport> => {
            const recorded = options.recorded.get(host.name);
            let connection: SshConnection | undefined;
            try {
                connection = new SshConnection(targetFor(host, recorded), { runner: options.runner, runtimeDir: options.runtimeDir });
                const state = await readGenerations(connection);
                return { host: host.name, generations: rowsOf(state.generations, recorded?.history ?? [], options.updates) };
            } catch (error) {
                return { host: host.name, generations: [], error: formatError(error) };
            } finally {
                await connection?.close().catch(() => undefined);
            }
        }),
    );
}

function table(header: string[], rows: string[][]): string[] {
    const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
    const line = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd();
    return [line(header), ...rows.map(line)];
}

export function flagsOf(row: GenerationRow): string {
    const flags: string[] = [];
    if (row.running) flags.push("running");
    if (row.current) flags.push("boot");
    if (row.booted) flags.push("booted");
    return flags.join(", ");
}

/** The human output: one table per host, or the host's error. */
export function formatReports(reports: readonly HostReport[], stack: string): string {
    const out: string[] = [];
    for (const report of reports) {
        if (report.error !== undefined) {
            out.push(`${report.host}: could not list generations`, ...report.error.split("\n").map((line) => `  ${line}`), "");
            continue;
        }
        if (report.generations.length === 0) {
            out.push(`${report.host}: no system generations (the host has no system profile yet)`, "");
            continue;
        }
        out.push(`${report.host} (stack ${stack}):`);
        const rows = report.generations.map((row) => [
            String(row.generation),
            row.date,
            row.storePath ?? "(link missing)",
            row.nixosVersion ?? "-",
            row.stackVersion === null ? "-" : `stack update ${row.stackVersion}`,
            describeRevision(row.flake),
            row.operator ?? "-",
            flagsOf(row),
        ]);
        out.push(...table(["GEN", "DATE", "STORE PATH", "NIXOS", "DEPLOYED BY", "REVISION", "OPERATOR", "FLAGS"], rows).map((line) => `  ${line}`), "");
    }
    return out.join("\n");
}

export interface GenerationsOptions {
    hosts?: string;
    stack?: string;
    json: boolean;
    help: boolean;
}

/** Parses the command's arguments; throws a usage message for anything else. */
export function parseGenerationsArgs(args: string[]): GenerationsOptions {
    const { values, positionals } = parseArgs({
        args,
        options: {
            hosts: { type: "string" },
            stack: { type: "string", short: "s" },
            json: { type: "boolean" },
            help: { type: "boolean", short: "h" },
        },
        strict: true,
        allowPositionals: true,
    });
    if (positionals.length > 0) throw new Error(`unexpected argument: ${positionals[0]}`);
    return { hosts: values.hosts, stack: values.stack, json: values.json ?? false, help: values.help ?? false };
}

export async function generationsCommand(args: string[]): Promise<number> {
    let options: GenerationsOptions;
    try {
        options = parseGenerationsArgs(args);
    } catch (error) {
        process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n\n${GENERATIONS_USAGE}`);
        return 2;
    }
    if (options.help) {
        process.stdout.write(GENERATIONS_USAGE);
        return 0;
    }
    const projectRoot = process.cwd();
    const stackName = await resolveStackName(options.stack, projectRoot);
    const fleet = await openFleetStack(stackName, projectRoot);
    const hosts = hostsFromOption(fleet.hosts, options.hosts);
    const [recorded, updates] = await Promise.all([recordedHosts(fleet.stack), stackUpdates(fleet.stack)]);

    // Removed afterwards, and also when the command is interrupted (src/process/runtimeDir.ts).
    const runtimeDir = makeRuntimeDir();
    let reports: HostReport[];
    try {
        reports = await collectReports({ hosts, recorded, updates, runner: runProcess, runtimeDir });
    } finally {
        removeRuntimeDir(runtimeDir);
    }

    if (options.json) process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
    else process.stdout.write(formatReports(reports, stackName));
    const failed = reports.filter((report) => report.error !== undefined).map((report) => report.host);
    if (failed.length > 0) {
        process.stderr.write(`error: could not list generations of ${failed.length} host${failed.length > 1 ? "s" : ""}: ${failed.join(", ")}\n`);
        return 1;
    }
    return 0;
}
