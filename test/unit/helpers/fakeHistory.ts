// A fake of Automation API's Stack.history() that pages the way `pulumi stack history` does: newest
// first, and only the newest 10 without --page-size (the CLI's default). `versions: false` is the
// file:// backend (every version 0); `versions: true` is Pulumi Cloud (1, 2, 3, … oldest first).
import type { UpdateSummary } from "@pulumi/pulumi/automation";

export const UPDATE_SECONDS = 60;
const EPOCH = Date.parse("2026-01-01T00:00:00.000Z");

/** Update n (1 = oldest) of the fake: it starts at EPOCH + n minutes and lasts 20 seconds. */
export function updateWindow(n: number): { start: Date; end: Date } {
    const start = new Date(EPOCH + n * UPDATE_SECONDS * 1000);
    return { start, end: new Date(start.getTime() + 20_000) };
}

/** A moment inside update n, as a deployment record's activatedAt. */
export const during = (n: number): string => new Date(updateWindow(n).start.getTime() + 10_500).toISOString();

export class FakeHistory {
    private count = 0;
    readonly calls: { pageSize?: number; page?: number; showSecrets?: boolean }[] = [];
    private readonly results = new Map<number, string>();

    constructor(private readonly options: { versions: boolean }) {}

    /** Adds n finished updates (kind update, succeeded unless told). */
    add(n: number, result: string = "succeeded"): this {
        for (let i = 0; i < n; i++) {
            this.count += 1;
            this.results.set(this.count, result);
        }
        return this;
    }

    get size(): number {
        return this.count;
    }

    private summary(n: number): UpdateSummary {
        const { start, end } = updateWindow(n);
        return {
            version: this.options.versions ? n : 0,
            kind: "update",
            startTime: start,
            endTime: end,
            message: `update ${n}`,
            environment: {},
            config: {},
            result: this.results.get(n) ?? "succeeded",
        } as UpdateSummary;
    }

    readonly history = async (pageSize?: number, page?: number, showSecrets?: boolean): Promise<UpdateSummary[]> => {
        this.calls.push({ pageSize, page, showSecrets });
        const newestFirst = Array.from({ length: this.count }, (_, i) => this.summary(this.count - i));
        const size = pageSize ?? 10;
        const from = ((page ?? 1) - 1) * size;
        return newestFirst.slice(from, from + size);
    };
}
