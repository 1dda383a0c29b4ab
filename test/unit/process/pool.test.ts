// Limiter: at most `limit` tasks at once, the others in order (health checks, an update's plans).
import { describe, expect, it } from "vitest";
import { Limiter } from "../../../src/process/pool";

describe("Limiter", () => {
    it("runs at most `limit` tasks at once, the rest in the order they came, and passes results and errors through", async () => {
        const limiter = new Limiter(2);
        let running = 0;
        let most = 0;
        const order: number[] = [];
        const task = (n: number) => async () => {
            running += 1;
            most = Math.max(most, running);
            order.push(n);
            await new Promise((resolve) => setTimeout(resolve, 2));
            running -= 1;
            if (n === 3) throw new Error("task 3 failed");
            return n * 10;
        };
        const results = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => limiter.run(task(n))));
        expect(most).toBe(2);
        expect(order).toEqual([1, 2, 3, 4, 5]);
        expect(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message))).toEqual([10, 20, "task 3 failed", 40, 50]);
        // A failed task frees its slot: the limiter still runs tasks afterwards.
        expect(await limiter.run(async () => "after")).toBe("after");
    });
});
