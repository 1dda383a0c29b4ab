// The pulumi runs every stack command makes first, started before the command's modules load:
// the selected stack's name and the stack's config are ~0.2 s runs each that need none of them.
// main.ts starts them from the raw arguments; stack.ts takes their results when they answer what
// it would ask (same stack, same environment), and asks itself otherwise.
import { runProcess, type ProcessRunner, type RunResult } from "../process/runner";
import { passphraseEnvFor, type Environment } from "../program/passphrase";
import { plainStackConfig } from "../config/plainStackConfig";

/** `pulumi config --show-secrets --json` of one stack, as stack.ts's readAllConfig runs it. */
export function configArgv(stack: string): string[] {
    return ["pulumi", "config", "--show-secrets", "--json", "--stack", stack, "--non-interactive"];
}

/** The variables the config read adds to this process's: the stack's (the dev passphrase for dev) and PULUMI_AUTOMATION_API, as every run of the commands. */
export function configEnv(envVars: Record<string, string>): Record<string, string | undefined> {
    return { ...envVars, PULUMI_AUTOMATION_API: "true" };
}

interface ConfigRead {
    stack: string;
    projectRoot: string;
    result: Promise<RunResult>;
}

export interface Prefetch {
    /**
     * `pulumi stack ls --json`, when no --stack was given: its current entry is the selected
     * stack, named as --stack must be given it (not
     * `pulumi stack --show-name`, which leaves out the organization of a Pulumi Cloud stack outside
     * the default one: --stack would name the default organization's stack of that name).
     */
    selected?: Promise<RunResult>;
    /** The named stack's config, when --stack was given. */
    config?: ConfigRead;
}

let started: Prefetch | undefined;
/** Stops the started runs (stopPrefetch). */
let stopper: AbortController | undefined;

/**
 * The value of `--stack` in a command's raw arguments (`--stack dev`, `--stack=dev`); undefined
 * when absent; null when the arguments are unusual enough that only the command's own parser
 * should read them (given twice, missing value, --help).
 */
export function stackArgument(args: readonly string[]): string | undefined | null {
    let stack: string | undefined;
    for (let i = 0; i < args.length; i++) {
        const arg = args[i]!;
        if (arg === "--help" || arg === "-h") return null;
        // What follows is not the command's (exec's remote command).
        if (arg === "--") break;
        let value: string | undefined;
        if (arg === "--stack") value = args[++i];
        else if (arg.startsWith("--stack=")) value = arg.slice("--stack=".length);
        else continue;
        if (value === undefined || value === "" || value.startsWith("-") || stack !== undefined) return null;
        stack = value;
    }
    return stack;
}

/** Starts the runs for a stack command's arguments (once); never throws: a run that fails is asked again by its user. */
export function startPrefetch(args: readonly string[], projectRoot: string, env: Environment = process.env, runner: ProcessRunner = runProcess): Prefetch | undefined {
    const stack = stackArgument(args);
    if (stack === null) return undefined;
    stopper = new AbortController();
    const signal = stopper.signal;
    const run = (argv: string[], extra?: Record<string, string | undefined>): Promise<RunResult> => {
        const result = runner(argv, { cwd: projectRoot, env: { PULUMI_SKIP_UPDATE_CHECK: "true", ...extra }, signal });
        result.catch(() => undefined);
        return result;
    };
    let config: ConfigRead | undefined;
    // A stack file that says all pulumi would needs no config run (stack.ts reads it itself).
    if (stack !== undefined && plainStackConfig(projectRoot, stack) === undefined) {
        let extra: Record<string, string | undefined> | undefined;
        try {
            extra = configEnv(passphraseEnvFor(stack, projectRoot, env));
        } catch {
            // A passphrase problem: the command reports it in its own words.
            extra = undefined;
        }
        if (extra) config = { stack, projectRoot, result: run(configArgv(stack), extra) };
    }
    started = {
        ...(stack === undefined ? { selected: run(["pulumi", "stack", "ls", "--json", "--non-interactive"]) } : {}),
        ...(config ? { config } : {}),
    };
    return started;
}

/** The selected stack's name as the started run listed it; undefined when none was started, it failed or none is selected. */
export async function takeSelectedStack(): Promise<string | undefined> {
    const selected = started?.selected;
    if (!started || !selected) return undefined;
    delete started.selected;
    return parseSelectedStack(await selected.catch(() => undefined));
}

/** The current stack of a `pulumi stack ls --json` run; undefined when it failed, printed no JSON or has none (or an odd name). */
export function parseSelectedStack(result: RunResult | undefined): string | undefined {
    let stacks: unknown;
    try {
        stacks = result?.code === 0 ? JSON.parse(result.stdout) : undefined;
    } catch {
        return undefined;
    }
    const current = Array.isArray(stacks) ? (stacks as { name?: unknown; current?: unknown }[]).find((stack) => stack?.current === true) : undefined;
    const name = typeof current?.name === "string" ? current.name : "";
    return /^[A-Za-z0-9_.\/-]+$/.test(name) ? name : undefined;
}

/** The started config read of this stack in this project, if any (taken once). */
export function takeConfig(stack: string, projectRoot: string): Promise<RunResult> | undefined {
    const config = started?.config;
    if (!started || !config || config.stack !== stack || config.projectRoot !== projectRoot) return undefined;
    delete started.config;
    return config.result;
}

/**
 * Ends the started runs that are still going (the command is ending: a usage error, say, ends it
 * before it took them); they only read, and nothing waits for them any more.
 */
export function stopPrefetch(): void {
    stopper?.abort();
}

/** Forgets what was started (tests). */
export function resetPrefetch(): void {
    started = undefined;
    stopper = undefined;
}
