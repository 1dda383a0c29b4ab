// A stack of the project as the operator commands use it: its engine runs (engineRun.ts), and its
// state and update history read through the pulumi CLI with the arguments and environment the
// Automation API gives them, without loading it (see engineRun.ts for why).
import type { UpdateSummary } from "@pulumi/pulumi/automation";
import { FleetError, tail } from "../errors";
import { runProcess, type ProcessRunner, type RunResult } from "../process/runner";
import { pulumiRunVars, runEngine, type EngineRunOptions, type EngineRunResult, type EngineStackRef } from "./engineRun";

/** What a command says of a stack the backend does not have (the engine's or a read's "no stack named …"). */
export function missingStackMessage(stack: string): string {
    return `stack "${stack}" does not exist in this project's backend, so nothing was changed\n  hint: create it with: npm run pulumi -- stack init ${stack}`;
}

/** The part of a stack the commands read its history through (tests fake it). */
export interface HistorySource {
    history(pageSize?: number, page?: number, showSecrets?: boolean): Promise<UpdateSummary[]>;
}

export class CliStack implements EngineStackRef, HistorySource {
    /** What every pulumi run of the stack adds to this process's environment (the dev passphrase; the program's targeted hosts). */
    readonly envVars: Record<string, string>;

    constructor(
        readonly name: string,
        readonly projectRoot: string,
        envVars: Record<string, string> = {},
        private readonly runner: ProcessRunner = runProcess,
    ) {
        this.envVars = { ...envVars };
    }

    /** `pulumi up --yes --skip-preview` with the options; rejects with EngineRunError when it fails. */
    up(options: EngineRunOptions): Promise<EngineRunResult> {
        return runEngine("up", this, options);
    }

    /** `pulumi preview` with the options; rejects with EngineRunError when it fails. */
    preview(options: EngineRunOptions): Promise<EngineRunResult> {
        return runEngine("preview", this, options);
    }

    /** The stack's current state (`pulumi stack export --show-secrets`). Never printed: it holds the secrets in plaintext. */
    async exportStack(): Promise<{ version?: number; deployment?: unknown }> {
        const result = await this.cli(["stack", "export", "--show-secrets"]);
        return JSON.parse(result.stdout) as { version?: number; deployment?: unknown };
    }

    /** A page of the stack's update history, newest first (`pulumi stack history --json`), its times as Dates. */
    async history(pageSize?: number, page?: number, showSecrets = true): Promise<UpdateSummary[]> {
        const args = ["stack", "history", "--json"];
        if (showSecrets) args.push("--show-secrets");
        if (pageSize) args.push("--page-size", String(Math.floor(pageSize)), "--page", String(Math.floor(page !== undefined && page >= 1 ? page : 1)));
        const result = await this.cli(args);
        return JSON.parse(result.stdout, (key, value: unknown) => ((key === "startTime" || key === "endTime") && typeof value === "string" ? new Date(value) : value)) as UpdateSummary[];
    }

    private async cli(args: string[]): Promise<RunResult> {
        const result = await this.runner(["pulumi", ...args, "--stack", this.name, "--non-interactive"], {
            cwd: this.projectRoot,
            env: pulumiRunVars(this.envVars),
        });
        if (result.code !== 0 && /no stack named '[^'\n]*' found/.test(result.stderr)) {
            throw new FleetError({ phase: "select", message: missingStackMessage(this.name).split("\n")[0]!, hint: `create it with: npm run pulumi -- stack init ${this.name}` });
        }
        // Never its stdout: an export holds the stack's secrets in plaintext.
        if (result.code !== 0) throw new Error(`pulumi ${args.slice(0, 2).join(" ")} --stack ${this.name} exited with ${result.code ?? result.signal}: ${tail(result.stderr, 5)}`);
        return result;
    }
}
