// The operator commands work on the same stacks and state as `pulumi up`, through the pulumi CLI
// (cliStack.ts): this file opens a stack and reads what the commands need from it.
import type { UpdateSummary } from "@pulumi/pulumi/automation";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { configSourceOf, loadStackHosts, readStackConfig, type HostConfig, type StackConfig } from "../config";
import { shortStackName, stackFileName, stackFileYamlError } from "../config/stackFile";
import { FleetError } from "../errors";
import type { HostOutputs } from "../provider/hostInputs";
import { HOOK_TYPE, HOST_TYPE } from "../resources/types";
import { numberedUpdates, readAllUpdates } from "../deploy/generations";
import { passphraseEnvFor, type Environment } from "../program/passphrase";
import { runProcess, type ProcessRunner } from "../process/runner";
import { plainStackConfig } from "../config/plainStackConfig";
import { CliStack, type HistorySource } from "./cliStack";
import { configArgv, configEnv, parseSelectedStack, takeConfig, takeSelectedStack } from "./prefetch";

export type { HistorySource };

export const PROJECT = "nixos-fleet";
export const CONFIG_NAMESPACE = "nixos-fleet";

export interface FleetStack {
    stack: CliStack;
    name: string;
    projectRoot: string;
    settings: StackConfig;
    /** All hosts of the stack (its selection), with the stack's defaults and overrides applied. */
    hosts: HostConfig[];
}

export function hostUrn(stack: string, host: string): string {
    // The stack's own name (shortStackName): with its organization, the URN matches no resource,
    // pulumi refuses the targets and steps every host as "same".
    return `urn:pulumi:${shortStackName(stack)}::${PROJECT}::${HOST_TYPE}::${host}`;
}

/** A host's hook resources (children of its Host): a deploy of the host runs them too. */
export function hookUrns(stack: string, host: Pick<HostConfig, "name" | "hooks">): string[] {
    return host.hooks.map((hook) => `urn:pulumi:${shortStackName(stack)}::${PROJECT}::${HOST_TYPE}$${HOOK_TYPE}::${host.name}-${hook.name}`);
}

/**
 * What a run on these hosts targets: each Host and its hooks. Not the engine's "dependents": in a
 * staged rollout the hosts of later batches depend on earlier ones and must not be pulled in.
 */
export function deploymentTargets(stack: string, hosts: readonly Pick<HostConfig, "name" | "hooks">[]): Map<string, string[]> {
    return new Map(hosts.map((host) => [host.name, [hostUrn(stack, host.name), ...hookUrns(stack, host)]]));
}

export function hostNameOfUrn(urn: string): string | undefined {
    return urn.includes(`::${HOST_TYPE}::`) ? urn.slice(urn.lastIndexOf("::") + 2) : undefined;
}

/** Opens an existing stack of the project in projectRoot and loads its hosts (no evaluation). */
export async function openFleetStack(name: string, projectRoot: string, env: Environment = process.env): Promise<FleetStack> {
    // The dev passphrase for the dev stack only; any other stack brings its own (or fails here, saying how).
    let envVars: Record<string, string>;
    try {
        envVars = passphraseEnvFor(name, projectRoot, env);
    } catch (problem) {
        // A stack the project does not have needs no passphrase: say what is wrong (its name).
        if (!existsSync(join(projectRoot, stackFileName(name)))) {
            const known = await listStacks(projectRoot).catch(() => undefined);
            if (known && !known.some((stack) => stack === name || shortStackName(stack) === shortStackName(name))) throw await missingStack(name, projectRoot, problem);
        }
        throw problem;
    }
    // Not `pulumi stack select`: every command the stack runs names it (--stack), and selecting it
    // would also change the project's selected stack under the operator (a later plain
    // `pulumi up` would go to the stack last deployed with --stack). Reading its config says
    // whether it exists.
    const stack = new CliStack(name, projectRoot, envVars);
    // The stack file, when it alone says what pulumi would (no secret to decrypt): no pulumi run
    // to wait for. Whether the stack exists is then said by the engine's run (classifyFailure).
    let values = plainStackConfig(projectRoot, name);
    if (values === undefined) {
        const config = await readAllConfig(name, projectRoot, envVars);
        if (!config.ok) {
            if (/no stack named/.test(config.error.message)) throw await missingStack(name, projectRoot, config.error);
            throw unreadableConfig(name, projectRoot, config.error);
        }
        values = Object.fromEntries(Object.entries(config.values).map(([key, value]) => [key, value.value]));
    }
    const source = configSourceOf(values);
    const file = `Pulumi.${name}.yaml`;
    const settings = readStackConfig(source, { baseDir: projectRoot, file });
    const hosts = await loadStackHosts(settings, { file });
    return { stack, name, projectRoot, settings, hosts };
}

/** `pulumi config --json`: each key's value (objects as JSON text) and whether it is a secret. */
type AllConfig = Record<string, { value: string; secret: boolean }>;

/**
 * `pulumi config --show-secrets --json` of the stack (this process's environment plus the stack's
 * `envVars`), or the error pulumi gave. main.ts may have started it already (prefetch.ts).
 */
export async function readAllConfig(
    name: string,
    projectRoot: string,
    envVars: Record<string, string>,
    runner: ProcessRunner = runProcess,
): Promise<{ ok: true; values: AllConfig } | { ok: false; error: Error }> {
    const argv = configArgv(name);
    const result = await (takeConfig(name, projectRoot) ?? runner(argv, { cwd: projectRoot, env: configEnv(envVars) }));
    if (result.code !== 0) return { ok: false, error: new Error(`${argv.join(" ")} exited with ${result.code}:\n${result.stderr}`) };
    try {
        return { ok: true, values: JSON.parse(result.stdout) as AllConfig };
    } catch (error) {
        // Not the output itself: it holds the stack's secrets in plaintext (--show-secrets).
        return { ok: false, error: new Error(`pulumi config printed no JSON (${result.stdout.length} characters, not shown: they may hold secrets): ${error instanceof Error ? error.name : "parse error"}`) };
    }
}

async function missingStack(name: string, projectRoot: string, error: unknown): Promise<FleetError> {
    const known = await listStacks(projectRoot).catch(() => []);
    return new FleetError({
        phase: "select",
        message: `stack "${name}" does not exist in this project's backend`,
        hint: known.length ? `known stacks: ${known.join(", ")}` : "create it with: npm run pulumi -- stack init <name>",
        detail: error instanceof Error ? error.message : String(error),
    });
}

/** Why `pulumi config` could not read the stack's config: the file's YAML error (file:line:column), else pulumi's own error line. */
export function unreadableConfig(name: string, projectRoot: string, error: unknown): FleetError {
    const file = stackFileName(name);
    let text: string | undefined;
    try {
        text = readFileSync(join(projectRoot, file), "utf8");
    } catch {
        text = undefined;
    }
    const invalid = text === undefined ? undefined : stackFileYamlError(text, file);
    if (invalid) return invalid;
    const said = (error instanceof Error ? error.message : String(error)).split("\n").filter((line) => /^error: /.test(line.trim()));
    return new FleetError({
        phase: "config",
        message: `cannot read the config of stack ${name}${said.length ? `: ${said[said.length - 1]!.trim().slice(7)}` : ""}`,
        hint: `check ${file}, or run: npm run pulumi -- config --stack ${name}`,
    });
}

/** --stack, or else the stack selected with `pulumi stack select` (as plain pulumi does). */
export async function resolveStackName(option: string | undefined, projectRoot: string): Promise<string> {
    if (option) return option;
    const selected = (await takeSelectedStack()) ?? parseSelectedStack(await runProcess(["pulumi", "stack", "ls", "--json", "--non-interactive"], { cwd: projectRoot }).catch(() => undefined));
    if (selected) return selected;
    const known = await listStacks(projectRoot).catch(() => []);
    throw new FleetError({
        phase: "select",
        message: "no stack given and none selected",
        hint: `pass --stack <name>${known.length ? ` (known: ${known.join(", ")})` : ""}, or run: npm run pulumi -- stack select <name>`,
    });
}

export async function listStacks(projectRoot: string, runner: ProcessRunner = runProcess): Promise<string[]> {
    const result = await runner(["pulumi", "stack", "ls", "--json", "--non-interactive"], { cwd: projectRoot });
    if (result.code !== 0) throw new Error(`pulumi stack ls exited with ${result.code}: ${result.stderr}`);
    const stacks = JSON.parse(result.stdout) as { name?: unknown }[] | null;
    return (stacks ?? []).map((stack) => stack?.name).filter((name): name is string => typeof name === "string");
}

/** The recorded outputs of every Host resource in the stack's current state, by host name. */
export async function recordedHosts(stack: Pick<CliStack, "exportStack">): Promise<Map<string, HostOutputs>> {
    const deployment = await stack.exportStack();
    const resources = (((deployment.deployment ?? {}) as { resources?: { type: string; outputs?: Record<string, unknown> }[] }).resources ?? []);
    const hosts = new Map<string, HostOutputs>();
    for (const resource of resources) {
        if (resource.type === HOST_TYPE && resource.outputs && typeof resource.outputs.name === "string") {
            hosts.set(resource.outputs.name, resource.outputs as unknown as HostOutputs);
        }
    }
    return hosts;
}

/**
 * The stack's WHOLE update history, numbered (derived on the file:// backend, see
 * numberedUpdates): every command numbers updates this one way, so a number, once shown, stays.
 * Secrets are not shown, so no passphrase is needed to read it.
 */
export async function stackUpdates(stack: HistorySource): Promise<UpdateSummary[]> {
    return numberedUpdates(await readAllUpdates((pageSize, page) => stack.history(pageSize, page, false)));
}
