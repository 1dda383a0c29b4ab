import { describe, expect, it } from "vitest";
import {
    LIST_GENERATIONS_SCRIPT,
    numberedUpdates,
    parseHostGenerations,
    parseListGenerations,
    readGenerations,
    stackVersionOf,
    updateAt,
    type StackUpdate,
} from "../../../src/deploy/generations";
import { SshConnection } from "../../../src/ssh/connection";
import { FakeRunner, masterStart, remote } from "../helpers/fakeRunner";
import { fleetErrorOf, runtimeDir, storePath, target } from "../helpers/fixtures";

const gen1 = storePath("nixos-system-alpha-24.05.1");
const gen2 = storePath("nixos-system-alpha-24.05.2");
const gen3 = storePath("nixos-system-alpha-24.05.3");

/** The output LIST_GENERATIONS_SCRIPT prints, assembled from its parts. */
function scriptOutput(listing: string, links: [number, string, string][], state: { profile?: string; current?: string; booted?: string }): string {
    return [
        "@generations",
        listing,
        "@links",
        ...links.map(([n, path, version]) => `link\t${n}\t${path}\t${version}`),
        "@state",
        `profile=${state.profile ?? ""}`,
        `current=${state.current ?? ""}`,
        `booted=${state.booted ?? ""}`,
        "",
    ].join("\n");
}

describe("parseListGenerations", () => {
    it("reads nix-env's own format: number, date, (current) marker, trailing spaces", () => {
        // Exactly what Nix 2.8 prints (format "%|4|   %04d-%02d-%02d %02d:%02d:%02d   %s").
        const output = "   1   2025-01-30 09:15:02   \n   2   2025-01-31 14:02:11   (current)\n";
        expect(parseListGenerations(output)).toEqual([
            { generation: 1, date: "2025-01-30 09:15:02", current: false },
            { generation: 2, date: "2025-01-31 14:02:11", current: true },
        ]);
    });

    it("accepts odd spacing: tabs, no indentation, several spaces, CRLF, wide numbers", () => {
        const output = [
            "1\t2025-01-30\t09:15:02",
            "  12      2025-02-01    10:00:00(current)",
            "10000 2025-02-02 11:00:00     \r",
            "",
        ].join("\n");
        expect(parseListGenerations(output)).toEqual([
            { generation: 1, date: "2025-01-30 09:15:02", current: false },
            { generation: 12, date: "2025-02-01 10:00:00", current: true },
            { generation: 10000, date: "2025-02-02 11:00:00", current: false },
        ]);
    });

    it("ignores lines that are not generations (warnings, blank lines)", () => {
        const output = "warning: something\n\n   3   2025-01-31 14:02:11   (current)\n";
        expect(parseListGenerations(output)).toEqual([{ generation: 3, date: "2025-01-31 14:02:11", current: true }]);
    });

    it("no profile: no generations", () => {
        expect(parseListGenerations("")).toEqual([]);
    });
});

describe("parseHostGenerations", () => {
    it("joins the listing with each link's store path and version and marks running, boot and booted", () => {
        const output = scriptOutput(
            "   1   2025-01-30 09:15:02   \n   2   2025-01-31 14:02:11   \n   3   2025-02-01 08:00:00   (current)",
            [
                [1, gen1, "24.05.1 (Uakari)"],
                [2, gen2, "24.05.2 (Uakari)"],
                [3, gen3, ""],
            ],
            { profile: "system-3-link", current: gen2, booted: gen1 },
        );
        const host = parseHostGenerations(output);
        expect(host.profileGeneration).toBe(3);
        expect(host.runningStorePath).toBe(gen2);
        expect(host.bootedStorePath).toBe(gen1);
        expect(host.generations).toEqual([
            { generation: 1, date: "2025-01-30 09:15:02", current: false, storePath: gen1, nixosVersion: "24.05.1 (Uakari)", running: false, booted: true },
            { generation: 2, date: "2025-01-31 14:02:11", current: false, storePath: gen2, nixosVersion: "24.05.2 (Uakari)", running: true, booted: false },
            { generation: 3, date: "2025-02-01 08:00:00", current: true, storePath: gen3, nixosVersion: undefined, running: false, booted: false },
        ]);
    });

    it("the same system in two generations: only one is running (the profile's, else the newest)", () => {
        const listing = "   1   2025-01-30 09:15:02   \n   2   2025-01-31 14:02:11   \n   3   2025-02-01 08:00:00   (current)";
        const links: [number, string, string][] = [
            [1, gen1, ""],
            [2, gen2, ""],
            [3, gen1, ""],
        ];
        const onProfile = parseHostGenerations(scriptOutput(listing, links, { profile: "system-3-link", current: gen1 }));
        expect(onProfile.generations.filter((g) => g.running).map((g) => g.generation)).toEqual([3]);
        const notProfile = parseHostGenerations(scriptOutput(listing, links, { profile: "system-2-link", current: gen1 }));
        expect(notProfile.generations.filter((g) => g.running).map((g) => g.generation)).toEqual([3]);
    });

    it("a host without a system profile, or without /run links", () => {
        const empty = parseHostGenerations(scriptOutput("", [], { current: gen1 }));
        expect(empty.generations).toEqual([]);
        expect(empty.profileGeneration).toBeUndefined();
        expect(empty.runningStorePath).toBe(gen1);
        const noRun = parseHostGenerations(scriptOutput("   1   2025-01-30 09:15:02   (current)", [[1, gen1, ""]], { profile: "system-1-link", booted: "/run/booted-system" }));
        expect(noRun.runningStorePath).toBeUndefined();
        expect(noRun.bootedStorePath).toBeUndefined();
        expect(noRun.generations[0]).toMatchObject({ generation: 1, current: true, running: false, booted: false });
    });

    it("a listed generation whose link is gone has no store path", () => {
        const host = parseHostGenerations(scriptOutput("   4   2025-01-30 09:15:02   (current)", [], { profile: "system-4-link" }));
        expect(host.generations[0]!.storePath).toBeUndefined();
    });
});

describe("readGenerations", () => {
    it("one fixed script with no host values in it, as root (sudo for other users), one remote command", async () => {
        const runner = new FakeRunner().on(remote("sh", "-c"), {
            stdout: scriptOutput("   1   2025-01-30 09:15:02   (current)", [[1, gen1, "24.05.1"]], { profile: "system-1-link", current: gen1 }),
        });
        const connection = new SshConnection(target({ user: "deploy", address: "psi.example.org" }), { runner: runner.run, runtimeDir: runtimeDir() });
        const host = await readGenerations(connection);
        expect(host.generations).toHaveLength(1);
        const calls = runner.matching(remote("sh", "-c"));
        expect(calls).toHaveLength(1);
        expect(calls[0]!.viaSudo).toBe(true);
        expect(calls[0]!.remoteCommand![2]).toBe(LIST_GENERATIONS_SCRIPT);
        expect(LIST_GENERATIONS_SCRIPT).toContain("nix-env -p \"$p\" --list-generations");
        expect(LIST_GENERATIONS_SCRIPT).not.toMatch(/psi|deploy|alpha/);
        expect(runner.matching(masterStart)).toHaveLength(1);
    });

    it("a failing nix-env is a read-phase error naming the host, with nix-env's message", async () => {
        const runner = new FakeRunner().on(remote("sh", "-c"), { code: 1, stderr: "error: opening lock file '/nix/var/nix/profiles/system.lock': Permission denied\n" });
        const connection = new SshConnection(target(), { runner: runner.run, runtimeDir: runtimeDir() });
        const error = await fleetErrorOf(readGenerations(connection));
        expect(error.phase).toBe("read");
        expect(error.host).toBe("alpha");
        expect(error.detail).toContain("Permission denied");
        expect(error.hint).toContain("--list-generations");
    });

    it("sudo refusing is explained", async () => {
        const runner = new FakeRunner().on(remote("sh", "-c"), { code: 1, stderr: "sudo: a password is required\n" });
        const connection = new SshConnection(target({ user: "deploy" }), { runner: runner.run, runtimeDir: runtimeDir() });
        const error = await fleetErrorOf(readGenerations(connection));
        expect(error.hint).toMatch(/passwordless sudo/);
    });
});

describe("stack versions of generations", () => {
    const updates: StackUpdate[] = [
        { version: 1, kind: "update", startTime: new Date("2025-01-30T09:14:50Z"), endTime: new Date("2025-01-30T09:15:10Z"), result: "succeeded" },
        { version: 2, kind: "refresh", startTime: new Date("2025-01-30T10:00:00Z"), endTime: new Date("2025-01-30T10:00:05Z"), result: "succeeded" },
        { version: 3, kind: "update", startTime: "2025-01-31T14:02:00Z", endTime: "2025-01-31T14:02:20Z", result: "failed" },
        { version: 4, kind: "update", startTime: "2025-02-01T08:00:00Z", endTime: "2025-02-01T08:00:04Z", result: "succeeded" },
    ];

    it("the update whose [start, end] contains the activation time", () => {
        expect(updateAt(updates, "2025-01-30T09:15:02.123Z")).toBe(1);
        expect(updateAt(updates, "2025-01-31T14:02:11.000Z")).toBe(3);
        expect(updateAt(updates, "2025-01-31T14:02:00.000Z")).toBe(3); // the boundary belongs to the update
        expect(updateAt(updates, "2025-01-31T14:02:20.000Z")).toBe(3);
    });

    it("allows for the history's whole-second times, but not more", () => {
        // pulumi prints times to the second: an activation 0.6 s after the printed end is still in it.
        expect(updateAt(updates, "2025-02-01T08:00:04.600Z")).toBe(4);
        expect(updateAt(updates, "2025-02-01T08:00:07.000Z")).toBeUndefined();
        expect(updateAt(updates, "2025-01-29T00:00:00.000Z")).toBeUndefined();
    });

    it("refreshes and previews never deploy: an activation inside one is not attributed to it", () => {
        expect(updateAt(updates, "2025-01-30T10:00:02.000Z")).toBeUndefined();
    });

    it("a generation maps through its recorded deployment (same number and store path) to the update", () => {
        const history = [
            { generation: 3, storePath: gen3, activatedAt: "2025-02-01T08:00:02.000Z" },
            { generation: 2, storePath: gen2, activatedAt: "2025-01-31T14:02:11.000Z" },
            { generation: 1, storePath: gen1, activatedAt: "2025-01-30T09:15:02.000Z" },
        ];
        expect(stackVersionOf({ generation: 1, storePath: gen1 }, history, updates)).toBe(1);
        expect(stackVersionOf({ generation: 2, storePath: gen2 }, history, updates)).toBe(3);
        expect(stackVersionOf({ generation: 3, storePath: gen3 }, history, updates)).toBe(4);
    });

    it("not deployed by this stack: no record, a record of another system, an unparsable time, or no update around it", () => {
        const history = [
            { generation: 2, storePath: gen2, activatedAt: "2025-01-31T14:02:11.000Z" },
            { generation: 5, storePath: gen3, activatedAt: "not a time" },
            { generation: 6, storePath: gen3, activatedAt: "2024-06-01T00:00:00.000Z" },
            { generation: null, storePath: gen1, activatedAt: "2025-01-30T09:15:02.000Z" },
        ];
        expect(stackVersionOf({ generation: 4, storePath: gen1 }, history, updates)).toBeUndefined(); // made by hand
        expect(stackVersionOf({ generation: 2, storePath: gen1 }, history, updates)).toBeUndefined(); // number reused for another system
        expect(stackVersionOf({ generation: 5, storePath: gen3 }, history, updates)).toBeUndefined();
        expect(stackVersionOf({ generation: 6, storePath: gen3 }, history, updates)).toBeUndefined();
        expect(stackVersionOf({ generation: 1, storePath: gen1 }, history, [])).toBeUndefined();
    });

    it("a generation recorded twice (activated again later) belongs to the update that created it", () => {
        const history = [
            { generation: 1, storePath: gen1, activatedAt: "2025-02-01T08:00:02.000Z" },
            { generation: 1, storePath: gen1, activatedAt: "2025-01-30T09:15:02.000Z" },
        ];
        expect(stackVersionOf({ generation: 1, storePath: gen1 }, history, updates)).toBe(1);
    });
});

describe("numberedUpdates", () => {
    it("keeps the versions a backend gives (Pulumi Cloud)", () => {
        const history: StackUpdate[] = [
            { version: 7, kind: "update", startTime: "2025-01-02T00:00:00Z" },
            { version: 6, kind: "refresh", startTime: "2025-01-01T00:00:00Z" },
        ];
        expect(numberedUpdates(history).map((u) => u.version)).toEqual([7, 6]);
    });

    it("a file:// backend's all-zero versions become 1.. oldest first, refreshes counted, same-second ties by list order", () => {
        const history: StackUpdate[] = [
            { version: 0, kind: "update", startTime: "2025-01-03T00:00:00Z" },
            { version: 0, kind: "update", startTime: "2025-01-02T00:00:00Z" },
            { version: 0, kind: "refresh", startTime: "2025-01-02T00:00:00Z" },
            { version: 0, kind: "update", startTime: new Date("2025-01-01T00:00:00Z") },
        ];
        const numbered = numberedUpdates(history);
        expect(numbered.map((u) => [u.kind, u.version])).toEqual([
            ["update", 4],
            ["update", 3],
            ["refresh", 2],
            ["update", 1],
        ]);
        expect(history[0]!.version).toBe(0); // the input is left alone
        expect(numberedUpdates([])).toEqual([]);
    });
});

describe("updateAt with second-granular times", () => {
    it("an activation in the second where one update ended and the next began belongs to the first", async () => {
        const { updateAt } = await import("../../../src/deploy/generations");
        const updates = [
            { version: 2, kind: "update", startTime: "2026-11-21T18:27:06Z", endTime: "2026-11-21T18:27:12Z" },
            { version: 1, kind: "update", startTime: "2026-11-21T18:27:00Z", endTime: "2026-11-21T18:27:06Z" },
        ];
        expect(updateAt(updates, "2026-11-21T18:27:06.400Z")).toBe(1);
        expect(updateAt(updates, "2026-11-21T18:27:09.000Z")).toBe(2);
    });
});
