// Running `pulumi up` as a background deployer that a test can watch and kill mid-phase.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import type { FleetProject } from "./fleetProject";

export interface RunningUp {
    child: ChildProcess;
    output: () => string;
    /** Resolves with the exit code once the deployer has ended. */
    done: Promise<number | null>;
}

/** `pulumi up` in its own process group, so the whole deployer (CLI, program, provider) can be killed. */
export function startUp(project: FleetProject): RunningUp {
    let output = "";
    const child = spawn("pulumi", ["up", "--yes", "--skip-preview", "--non-interactive", "-s", project.stack], {
        cwd: project.projectDir,
        env: { ...process.env, ...project.env() },
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const done = new Promise<number | null>((resolve) => child.on("close", resolve));
    return { child, output: () => output, done };
}

export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what = "a condition"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

/** SIGKILL the deployer and every process it started (the engine runs plugins in their own process groups). */
export function killDeployer(child: ChildProcess): void {
    const table = execFileSync("ps", ["-eo", "pid=,ppid="], { encoding: "utf8" })
        .trim()
        .split("\n")
        .map((line) => line.trim().split(/\s+/).map(Number) as [number, number]);
    const tree = new Set([child.pid!]);
    for (let grew = true; grew; ) {
        grew = false;
        for (const [pid, ppid] of table) {
            if (tree.has(ppid) && !tree.has(pid)) {
                tree.add(pid);
                grew = true;
            }
        }
    }
    for (const pid of tree) {
        try {
            process.kill(pid, "SIGKILL");
        } catch {
            // already gone
        }
    }
}
