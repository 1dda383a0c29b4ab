import { describe, expect, it } from "vitest";
import { withShortStackTraces } from "../../../src/program/shortStacks";

describe("withShortStackTraces", () => {
    it("records one frame per stack inside, and restores the limit after, also when the work throws", () => {
        const before = Error.stackTraceLimit;
        const inside = withShortStackTraces(() => ({ limit: Error.stackTraceLimit, frames: (new Error().stack ?? "").split("\n").length - 1 }));
        expect(inside).toEqual({ limit: 1, frames: 1 });
        expect(Error.stackTraceLimit).toBe(before);
        expect(() =>
            withShortStackTraces(() => {
                throw new Error("registration failed");
            }),
        ).toThrow("registration failed");
        expect(Error.stackTraceLimit).toBe(before);
    });

    it("formats with Node.js's own formatter inside and gives the previous formatter back, also when the work throws (an error thrown inside is formatted by it when read)", () => {
        const formatting = Error as { prepareStackTrace?: unknown };
        const before = formatting.prepareStackTrace;
        const mine = (error: Error) => `formatted: ${error.message}`;
        formatting.prepareStackTrace = mine;
        try {
            const inside = withShortStackTraces(() => ({ formatter: formatting.prepareStackTrace, stack: new Error("here").stack }));
            expect(inside.formatter).toBeUndefined();
            expect(inside.stack).toMatch(/^Error: here\n {4}at .*shortStacks\.test\.ts:\d+:\d+/);
            let thrown: Error | undefined;
            try {
                withShortStackTraces(() => {
                    throw new Error("registration failed");
                });
            } catch (error) {
                thrown = error as Error;
            }
            expect(formatting.prepareStackTrace).toBe(mine);
            // Read after the registration: the restored formatter formats it.
            expect(thrown?.stack).toBe("formatted: registration failed");
        } finally {
            formatting.prepareStackTrace = before;
        }
    });
});
