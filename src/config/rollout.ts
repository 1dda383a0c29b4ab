// Staged rollouts, as the stack says them (`nixos-fleet:rollout`): canary hosts first, then the
// rest in batches of `batchSize` (a number of hosts or a percentage of the rest), stopping when
// more than `maxFailures` hosts failed (plain `pulumi up` stops at the first; see program/rollout.ts). How batches become an order of deploys: program/rollout.ts.
import { z } from "zod";
import { FleetError } from "../errors";
import { hostSelector } from "./names";
import { expecting, failure, integerIn, listOf } from "./rules";

/** Hosts per batch: a count, or a share of the hosts after the canary (rounded up, at least one). */
export type BatchSize = { count: number } | { percent: number };

const BATCH_SIZE_TEXT = /^(?:([1-9][0-9]{0,5})|([1-9][0-9]?|100)%)$/;
const BATCH_SIZE_DESCRIPTION = 'a number of hosts (at least 1) or a percentage like "25%" (1% to 100%)';

/** "3", 3, "25%" → BatchSize; undefined for anything else. */
export function batchSizeOf(value: unknown): BatchSize | undefined {
    if (typeof value === "number") return Number.isSafeInteger(value) && value >= 1 && value <= 999_999 ? { count: value } : undefined;
    if (typeof value !== "string") return undefined;
    const match = BATCH_SIZE_TEXT.exec(value.trim());
    if (!match) return undefined;
    return match[1] !== undefined ? { count: Number(match[1]) } : { percent: Number(match[2]) };
}

export function describeBatchSize(size: BatchSize): string {
    return "count" in size ? `${size.count} host${size.count === 1 ? "" : "s"}` : `${size.percent}%`;
}

/** `deploy --batch-size`: the same values as the setting; a usage error otherwise. */
export function parseBatchSizeOption(value: string | undefined, option = "--batch-size"): BatchSize | undefined {
    if (value === undefined) return undefined;
    const size = batchSizeOf(value);
    if (!size) throw new FleetError({ phase: "select", message: `${option} must be ${BATCH_SIZE_DESCRIPTION}, not "${value}"` });
    return size;
}

export const rolloutSchema = z.strictObject(
    {
        /** Hosts (names and @tags) deployed first, as one batch; none by default. */
        canary: listOf(hostSelector(), 'a list of host names and "@tag" selectors').default([]),
        /** Hosts per batch after the canary; unset: all of them in one batch. */
        batchSize: z
            .unknown()
            .transform((value, context) => {
                if (value === undefined) return undefined;
                const size = batchSizeOf(value);
                if (size) return size;
                context.addIssue({ code: "custom", ...failure(`expected ${BATCH_SIZE_DESCRIPTION}, got ${JSON.stringify(value)}`, 'e.g. batchSize: 2 or batchSize: "25%"') });
                return z.NEVER;
            })
            .optional(),
        /** Failed hosts the rollout tolerates before it holds back the later batches. */
        maxFailures: integerIn(0, 10_000, "a number of hosts from 0 to 10000").default(0),
    },
    expecting("a mapping with canary, batchSize, maxFailures"),
);

export type RolloutInput = z.input<typeof rolloutSchema>;
export type Rollout = z.output<typeof rolloutSchema>;
