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
});
