// After `npm run pulumi -- refresh` (scripts/pulumi): a host the refresh could not reach keeps its
// recorded state, marked unreachable (provider read), and Pulumi exits 0, since a provider's read
// either records a resource or fails it (a failed read would keep the others from being recorded).
// This check names those hosts and makes the wrapper's exit status say something went wrong.
import { FleetError } from "../errors";
import { runProcess, type ProcessRunner } from "../process/runner";
import type { Unreachable } from "../provider/hostInputs";
import { HOST_TYPE } from "../resources/types";

export interface UnreachableHost {
    host: string;
    unreachable: Unreachable;
}

/** Hosts of an exported state whose unreachable mark was set by a refresh that tried at or after `since`. */
export function unreachableSince(exported: unknown, since: Date): UnreachableHost[] {
    const resources = ((exported as { deployment?: { resources?: { type?: string; outputs?: Record<string, unknown> }[] } })?.deployment?.resources ?? []);
    const found: UnreachableHost[] = [];
    for (const resource of resources) {
        const outputs = resource.outputs;
        const mark = outputs?.unreachable as Unreachable | null | undefined;
        if (resource.type !== HOST_TYPE || !mark || typeof outputs?.name !== "string") continue;
        // Seconds: `date +%s` gives the start; the mark's time is the provider's, to the millisecond.
        if (Date.parse(mark.checkedAt) >= Math.floor(since.getTime() / 1000) * 1000) found.push({ host: outputs.name, unreachable: mark });
    }
    return found;
}

/** The message for the end of the refresh, or undefined when every host was reached. */
export function refreshProblem(hosts: readonly UnreachableHost[]): string | undefined {
    if (!hosts.length) return undefined;
    return (
        `refresh could not reach ${hosts.length} host${hosts.length > 1 ? "s" : ""}: ${hosts.map((h) => h.host).join(", ")}; ` +
        "their last recorded state was kept, marked unreachable (the others were recorded)\n" +
        hosts.map((h) => `  ${h.host}: ${h.unreachable.error} (unreachable since ${h.unreachable.since})`).join("\n") +
        "\n  hint: bring them back (or fix the connection error), then run npm run pulumi -- refresh again"
    );
}

/** `refresh-check <stack|""> <start in seconds since 1970>`: exit 1 naming the hosts the refresh missed. */
export async function refreshCheckCommand(args: string[], runner: ProcessRunner = runProcess): Promise<number> {
    const [stack, startedAt] = args;
    const seconds = Number(startedAt);
    if (stack === undefined || !Number.isFinite(seconds)) {
        throw new FleetError({ phase: "select", message: "usage: refresh-check <stack> <start time in seconds> (run by scripts/pulumi after a refresh)" });
    }
    const result = await runner(["pulumi", "stack", "export", ...(stack ? ["--stack", stack] : [])], { timeoutMs: 120_000 });
    if (result.code !== 0) {
        throw new FleetError({ phase: "read", message: "could not read the stack's state after the refresh", detail: result.stderr });
    }
    const problem = refreshProblem(unreachableSince(JSON.parse(result.stdout), new Date(seconds * 1000)));
    if (!problem) return 0;
    process.stderr.write(`error: ${problem}\n`);
    return 1;
}
