// The shared core of `deploy` and `rollback`: plan (preview) the selected hosts, ask unless
// --yes, run `pulumi up` targeted at exactly those hosts, and report a line per host per phase
// and a summary. Only the named hosts are touched; others stay as they are.
import { createInterface } from "node:readline/promises";
import type { Stack } from "@pulumi/pulumi/automation";
import { FleetError } from "../errors";
import { ProgressTracker, renderSummary, type HostSummary } from "./progress";
import { hostUrn } from "./stack";

export interface DeploymentOptions {
    stack: Stack;
    stackName: string;
    hosts: string[];
    /** Plan only. */
    preview: boolean;
    yes: boolean;
    parallel?: number;
    json: boolean;
    /** What this run is, for the prompt and the update message (e.g. "rollback of psi"). */
    description: string;
}

export interface DeploymentReport {
    stack: string;
    preview: boolean;
    hosts: HostSummary[];
    failed: string[];
    errors: string[];
}

async function confirm(question: string): Promise<boolean> {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
        return /^y(es)?$/i.test((await rl.question(question)).trim());
    } finally {
        rl.close();
    }
}

function report(options: DeploymentOptions, tracker: ProgressTracker, planning: boolean, failure?: unknown): DeploymentReport {
    const hosts = tracker.summaries(options.hosts, planning);
    const errors = [...tracker.programErrors];
    if (failure && errors.length === 0 && hosts.every((h) => h.result !== "failed")) {
        errors.push(failure instanceof Error ? failure.message.split("\n").slice(-8).join("\n") : String(failure));
    }
    return { stack: options.stackName, preview: planning, hosts, failed: hosts.filter((h) => h.result === "failed").map((h) => h.host), errors };
}

export interface DeploymentOutcome {
    code: number;
    report?: DeploymentReport;
}

function print(options: DeploymentOptions, deployment: DeploymentReport): DeploymentOutcome {
    if (options.json) {
        process.stdout.write(`${JSON.stringify(deployment, null, 2)}\n`);
    } else {
        process.stdout.write(`\n${renderSummary(deployment.hosts)}\n`);
        for (const error of deployment.errors) process.stdout.write(`\nerror: ${error}\n`);
        if (deployment.failed.length) process.stdout.write(`\nfailed: ${deployment.failed.join(", ")}\n`);
    }
    return { code: deployment.failed.length || deployment.errors.length ? 1 : 0, report: deployment };
}

export async function runDeployment(options: DeploymentOptions): Promise<DeploymentOutcome> {
    const target = options.hosts.map((host) => hostUrn(options.stackName, host));
    // Progress goes to stderr when --json owns stdout.
    const line = (text: string) => (options.json ? process.stderr : process.stdout).write(`${text}\n`);

    if (options.preview || !options.yes) {
        const tracker = new ProgressTracker(line);
        let failure: unknown;
        try {
            await options.stack.preview({ target, targetDependents: true, parallel: options.parallel, onEvent: tracker.onEvent, message: options.description });
        } catch (error) {
            failure = error;
        }
        const plan = report(options, tracker, true, failure);
        if (options.preview || plan.failed.length || plan.errors.length) return print(options, plan);
        const changing = plan.hosts.filter((h) => h.result === "planned");
        process.stdout.write(`\n${renderSummary(plan.hosts)}\n\n`);
        if (changing.length === 0) {
            line("nothing to deploy");
            return { code: 0, report: plan };
        }
        if (!process.stdin.isTTY) {
            throw new FleetError({
                phase: "select",
                message: `${options.description} needs confirmation, and there is no terminal to ask on`,
                hint: "add --yes to deploy without asking, or --preview to only see the plan",
            });
        }
        if (!(await confirm(`deploy ${changing.map((h) => h.host).join(", ")} on stack ${options.stackName}? [y/N] `))) {
            line("cancelled; nothing was changed");
            return { code: 1 };
        }
    }

    const tracker = new ProgressTracker(line);
    let failure: unknown;
    try {
        // Dependents too: a host's hooks run after it.
        await options.stack.up({ target, targetDependents: true, parallel: options.parallel, onEvent: tracker.onEvent, message: options.description });
    } catch (error) {
        failure = error;
    }
    return print(options, report(options, tracker, false, failure));
}
