// Time for tests of code that waits (reconnect backoff, the watchdog's timeout): a fake clock, so
// no test waits for real.
import { vi } from "vitest";

/**
 * A `sleep` to inject, over a faked Date: each call records its delay and moves Date.now() on by
 * it, as a real sleep would. Call `stop` (afterEach) to give Date back.
 */
export function fakeClock(start = Date.parse("2026-01-01T00:00:00.000Z")) {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(start);
    const slept: number[] = [];
    return {
        slept,
        sleep: async (ms: number): Promise<void> => {
            slept.push(ms);
            vi.setSystemTime(Date.now() + ms);
        },
        /** Milliseconds since the clock started. */
        elapsed: (): number => Date.now() - start,
        stop: () => vi.useRealTimers(),
    };
}

/**
 * Runs `work` with setTimeout and Date faked, moving fake time on until it settles: for code run
 * without an injected sleep (e.g. deployHost without DeployContext.sleep, to cover the default
 * one). Returns the result and how much fake time passed.
 */
export async function inFakeTime<T>(work: () => Promise<T>, maxFakeMs = 600_000): Promise<{ value: T; fakeMs: number }> {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const start = Date.now();
    try {
        const promise = work();
        let settled = false;
        promise.then(
            () => (settled = true),
            () => (settled = true),
        );
        while (!settled) {
            if (Date.now() - start > maxFakeMs) throw new Error(`inFakeTime: still running after ${maxFakeMs} ms of fake time`);
            await vi.advanceTimersByTimeAsync(1000);
        }
        return { value: await promise, fakeMs: Date.now() - start };
    } finally {
        vi.useRealTimers();
    }
}

/** The error `work` rejects with, under inFakeTime; fails when it resolves. */
export async function rejectionInFakeTime(work: () => Promise<unknown>, maxFakeMs?: number): Promise<{ error: unknown; fakeMs: number }> {
    const { value, fakeMs } = await inFakeTime(
        () =>
            work().then(
                () => ({ resolved: true as const, error: undefined }),
                (error: unknown) => ({ resolved: false as const, error }),
            ),
        maxFakeMs,
    );
    if (value.resolved) throw new Error("expected a rejection, but it resolved");
    return { error: value.error, fakeMs };
}
