// A stack's rollout as batches of hosts: the canary first, then the rest in batches of the
// configured size, in the order of the host names (how the stack loads its hosts, not the order of nixos-fleet:hosts). The program makes every host of a batch depend on
// every host of the batch before (so plain `pulumi up` deploys a batch only once the previous one
// deployed and passed its checks, and a failure stops the later batches); `deploy` uses the same
// batches to say which hosts a failure held back.
import { FleetConfigError, configProblem } from "../config/configError";
import { describeBatchSize, type BatchSize, type Rollout } from "../config/rollout";
import { configKey } from "../config/stackConfig";
import { didYouMean } from "../config/suggest";

export interface RolloutHost {
    name: string;
    tags: readonly string[];
}

export interface RolloutBatch {
    /** 1, 2, … in deploy order. */
    number: number;
    canary: boolean;
    hosts: string[];
}

/** The environment variable `deploy --batch-size` sets for one run (the program reads it). */
export const BATCH_SIZE_ENV = "NIXOS_FLEET_BATCH_SIZE";

/**
 * The batches, in order. Without a rollout (and without a batch size for this run) every host is
 * in one batch. Canary selectors that match no host are config errors naming the setting.
 */
export function planRollout(hosts: readonly RolloutHost[], rollout: Rollout | undefined, batchSizeOverride?: BatchSize): RolloutBatch[] {
    const canary = canaryHosts(hosts, rollout?.canary ?? []);
    const rest = hosts.map((host) => host.name).filter((name) => !canary.includes(name));
    const size = batchSizeOverride ?? rollout?.batchSize;
    const width = size === undefined ? rest.length : "count" in size ? size.count : Math.max(1, Math.ceil((rest.length * size.percent) / 100));
    const batches: RolloutBatch[] = [];
    if (canary.length) batches.push({ number: 1, canary: true, hosts: canary });
    for (let at = 0; at < rest.length; at += Math.max(1, width)) {
        batches.push({ number: batches.length + 1, canary: false, hosts: rest.slice(at, at + Math.max(1, width)) });
    }
    return batches;
}

function canaryHosts(hosts: readonly RolloutHost[], selectors: readonly string[]): string[] {
    const names = hosts.map((host) => host.name);
    const tags = [...new Set(hosts.flatMap((host) => host.tags))].sort();
    const chosen = new Set<string>();
    const problems = [];
    for (const [index, selector] of selectors.entries()) {
        const tag = selector.startsWith("@") ? selector.slice(1) : undefined;
        const matches = hosts.filter((host) => (tag === undefined ? host.name === selector : host.tags.includes(tag)));
        if (matches.length === 0) {
            problems.push(
                configProblem({
                    field: configKey(["rollout", "canary", index]),
                    message: tag === undefined ? `canary host "${selector}" is not a host of this stack` : `no host of this stack has tag "${tag}"`,
                    hint:
                        tag === undefined
                            ? `${didYouMean(selector, names)}the stack's hosts: ${names.join(", ") || "(none)"}`
                            : `${didYouMean(tag, tags)}tags of the stack's hosts: ${tags.join(", ") || "(none)"}`,
                }),
            );
        }
        for (const host of matches) chosen.add(host.name);
    }
    if (problems.length) throw new FleetConfigError(problems, "invalid rollout");
    return names.filter((name) => chosen.has(name));
}

/** `batch 1 (canary): psi; batch 2: rho, tau` */
export function describeBatches(batches: readonly RolloutBatch[]): string {
    return batches.map((batch) => `batch ${batch.number}${batch.canary ? " (canary)" : ""}: ${batch.hosts.join(", ")}`).join("; ");
}

/** The line the program logs at every preview and update of a staged stack (nothing for one batch). */
export function rolloutNotice(batches: readonly RolloutBatch[], size: BatchSize | undefined, overridden: boolean, maxFailures = 0): string | undefined {
    if (batches.length < 2) return undefined;
    const sized = size ? `, batches of ${describeBatchSize(size)}${overridden ? " (--batch-size for this run)" : ""}` : "";
    const stop =
        maxFailures === 0
            ? "when a host fails, the hosts of later batches are held back (not touched)"
            : `when a host fails, pulumi up holds the hosts of later batches back (not touched); npm run deploy goes on while at most ${maxFailures} host${maxFailures === 1 ? "" : "s"} failed`;
    return `rollout${sized}: ${describeBatches(batches)}. A batch starts only when every host of the one before deployed and passed its checks; ${stop}`;
}

/** The batch of each host. */
export function batchOf(batches: readonly RolloutBatch[]): Map<string, RolloutBatch> {
    return new Map(batches.flatMap((batch) => batch.hosts.map((host) => [host, batch] as const)));
}

/**
 * The hosts a failure holds back: every host of a batch after the first batch with a failed (or
 * unknown) host, each with the reason. Hosts outside the batches are not in the result.
 */
export function heldBackBy(batches: readonly RolloutBatch[], failedHosts: readonly string[]): Map<string, string> {
    return heldBackAfter(batches, failedHosts, 0);
}

/**
 * With `maxFailures`: the hosts of the batches after the one whose failures brought the count of
 * failed hosts above maxFailures (how `deploy` runs a rollout that tolerates failures).
 */
export function heldBackAfter(batches: readonly RolloutBatch[], failedHosts: readonly string[], maxFailures: number): Map<string, string> {
    const held = new Map<string, string>();
    let failedSoFar: string[] = [];
    for (const [index, batch] of batches.entries()) {
        failedSoFar = [...failedSoFar, ...batch.hosts.filter((host) => failedHosts.includes(host))];
        if (failedSoFar.length > maxFailures) {
            const reason = stopReason(batch, failedSoFar, maxFailures);
            for (const later of batches.slice(index + 1)) for (const host of later.hosts) held.set(host, reason);
            return held;
        }
    }
    return held;
}

/** Why the batches after `batch` were not started. */
export function stopReason(batch: RolloutBatch, failedSoFar: readonly string[], maxFailures: number): string {
    const where = `batch ${batch.number}${batch.canary ? " (canary)" : ""}`;
    if (maxFailures === 0) return `rollout: ${where} failed (${batch.hosts.filter((host) => failedSoFar.includes(host)).join(", ")}), so later batches were not started`;
    return `rollout: after ${where}, ${failedSoFar.length} hosts failed (${failedSoFar.join(", ")}), more than maxFailures (${maxFailures}), so later batches were not started`;
}
