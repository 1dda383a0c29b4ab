// Work on many hosts with at most `limit` under way at once (all at once without a limit).

/** Runs work(item) for every item, at most `limit` at a time; results in the items' order. Work should not throw (a throw rejects the whole at once, while the others run on). */
export async function mapLimit<T, R>(items: readonly T[], limit: number | undefined, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
    const results = new Array<R>(items.length);
    const width = Math.max(1, Math.min(limit ?? items.length, items.length));
    let next = 0;
    const worker = async (): Promise<void> => {
        while (next < items.length) {
            const index = next++;
            results[index] = await work(items[index]!, index);
        }
    };
    await Promise.all(Array.from({ length: width }, worker));
    return results;
}

/** At most `limit` tasks at once; the others wait their turn in order. */
export class Limiter {
    private active = 0;
    private readonly waiting: Array<() => void> = [];
    constructor(private readonly limit: number) {}

    async run<T>(task: () => Promise<T>): Promise<T> {
        if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
        else this.active += 1;
        try {
            return await task();
        } finally {
            const next = this.waiting.shift();
            if (next) next(); // the slot passes straight on
            else this.active -= 1;
        }
    }
}
