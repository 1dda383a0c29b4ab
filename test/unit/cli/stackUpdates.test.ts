import { describe, expect, it } from "vitest";
import { rowsOf } from "../../../src/cli/generations";
import { stackUpdates } from "../../../src/cli/stack";
import { numberedUpdates, readAllUpdates, runningUpdateNumber, stackVersionOf, type StackUpdate } from "../../../src/deploy/generations";
import { FakeHistory, during, updateWindow } from "../helpers/fakeHistory";
import { storePath } from "../helpers/fixtures";

const numbersByStart = (updates: readonly StackUpdate[]) =>
    new Map(updates.map((u) => [new Date(u.startTime).toISOString(), u.version]));

describe.each([
    ["file:// backend (versions 0, numbers derived)", false],
    ["Pulumi Cloud (versions numbered by the backend)", true],
])("stack update numbers on the %s", (_name, versions) => {
    it("reads the whole history page by page, not the newest 10, and numbers it 1..25 oldest first", async () => {
        const fake = new FakeHistory({ versions }).add(25);
        const updates = await stackUpdates(fake);
        expect(updates).toHaveLength(25);
        expect(updates.map((u) => u.version)).toEqual(Array.from({ length: 25 }, (_, i) => 25 - i));
        expect(updates.find((u) => u.version === 1)!.startTime).toEqual(updateWindow(1).start);
        // Every call pages explicitly and never asks for secrets.
        expect(fake.calls.every((call) => call.pageSize !== undefined && call.showSecrets === false)).toBe(true);
    });

    it("labels do not shift when more updates are added", async () => {
        const fake = new FakeHistory({ versions }).add(25);
        const before = numbersByStart(await stackUpdates(fake));
        fake.add(12);
        const after = numbersByStart(await stackUpdates(fake));
        for (const [start, version] of before) expect(after.get(start)).toBe(version);
        expect(after.size).toBe(37);
        expect(Math.max(...after.values())).toBe(37);
    });

    it("a generation deployed in update 3 is 'stack update 3' after 25 updates and after 40", async () => {
        const gen = storePath("nixos-system-psi-3");
        const history = [{ generation: 3, storePath: gen, action: "switch", activatedAt: during(3) }];
        const fake = new FakeHistory({ versions }).add(25);
        expect(stackVersionOf({ generation: 3, storePath: gen }, history, await stackUpdates(fake))).toBe(3);
        fake.add(15);
        const rows = rowsOf([{ generation: 3, date: "x", current: true, running: true, booted: false, storePath: gen }], history, await stackUpdates(fake));
        expect(rows[0]!.stackVersion).toBe(3);
    });
});

describe("the bug this replaces", () => {
    it("numbering only the newest 10 (history() without a page size) gave update 16 the label 1", async () => {
        const fake = new FakeHistory({ versions: false }).add(25);
        const partial = numberedUpdates(await fake.history());
        const oldestShown = partial.find((u) => u.version === 1)!;
        expect(oldestShown.startTime).toEqual(updateWindow(16).start);
        const whole = await stackUpdates(fake);
        expect(whole.find((u) => u.version === 1)!.startTime).toEqual(updateWindow(1).start);
    });
});

describe("readAllUpdates", () => {
    it("stops at the first short page; exact multiples end on an empty (or null) page", async () => {
        const pages: number[] = [];
        const all = await readAllUpdates(async (size, page) => {
            pages.push(page);
            return page <= 2 ? Array.from({ length: size }, (_, i) => (page - 1) * size + i) : page === 3 ? null : [];
        }, 5);
        expect(all).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        expect(pages).toEqual([1, 2, 3]);
    });
});

describe("runningUpdateNumber", () => {
    it("file:// backend: one past the newest (the running update is not listed yet)", async () => {
        expect(runningUpdateNumber(await stackUpdates(new FakeHistory({ versions: false }).add(25)))).toBe(26);
        expect(runningUpdateNumber([])).toBe(1);
    });

    it("a backend that lists the running update: its own number", () => {
        const updates: StackUpdate[] = [
            { version: 8, kind: "update", startTime: "2026-01-01T00:08:00Z", result: "in-progress" },
            { version: 7, kind: "update", startTime: "2026-01-01T00:07:00Z", result: "succeeded" },
        ];
        expect(runningUpdateNumber(updates)).toBe(8);
    });
});
