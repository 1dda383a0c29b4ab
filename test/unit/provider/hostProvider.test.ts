import { describe, expect, it, vi } from "vitest";
import type { DeployOutcome } from "../../../src/deploy/deployHost";
import type { HostState } from "../../../src/deploy/hostState";
import type { ClosurePath } from "../../../src/nix/closure";
import type { EngineLogger, Severity } from "../../../src/provider/engineLog";
import { HISTORY_LIMIT, secretChanges, secretFileChanges, type DeploymentRecord, type HostInputs, type HostOutputs } from "../../../src/provider/hostInputs";
import { isSecretValue, maskSecrets, secretValue, unwrapSecrets, wrapSecrets } from "../../../src/provider/secretMarkers";
import { HOOK_OUTPUT_CHARS, hookOutputRecord } from "../../../src/provider/hookProvider";
import {
    HostProvider,
    changedKeys,
    convergenceKeys,
    deployedStorePath,
    newlySecretKeys,
    outputsAfterDeploy,
    outputsAfterRead,
    recordedSide,
} from "../../../src/provider/hostProvider";
import { adoptedOutputs, adoptedStorePath, type ConfiguredHost } from "../../../src/provider/adopt";
import { describeRollback, outputsWhenUnreachable, stackOfUrn, undoneRollback, undoneRollbackReason } from "../../../src/provider/hostMarks";
import { installImportShim } from "../../../src/provider/importShim";
import { PROVIDER_INFO_TOKEN } from "../../../src/provider/providerInfo";
import { COUNTED_BY_PREVIEW } from "../../../src/deploy/plan";
import { inFakeTime } from "../helpers/clock";
import { FakeHost, attachLocalNix } from "../helpers/fakeHost";
import { FakeRunner, local, masterStart, remote, sshOption, type RecordedCall } from "../helpers/fakeRunner";
import { drvPath, runtimeDir, storePath } from "../helpers/fixtures";
import { UNKNOWN } from "../../../src/provider/unknowns";

const v1 = storePath("nixos-system-alpha-1");
const v2 = storePath("nixos-system-alpha-2");
const next = storePath("nixos-system-alpha-3");
const lib = storePath("libfoo-1.0");
const URN = "urn:pulumi:dev::nixos-fleet::nixos:index:Host::alpha";

function inputs(overrides: Partial<HostInputs> = {}): HostInputs {
    return {
        name: "alpha",
        address: "alpha.example.org",
        user: "deploy",
        flake: "/srv/infra",
        attribute: "nixosConfigurations.alpha",
        buildOn: "local",
        action: "switch",
        substituteOnDestination: false,
        tags: ["web"],
        // No watchdog (0): the tests of confirmation set one.
        confirmTimeout: 0,
        storePath: next,
        drvPath: drvPath("nixos-system-alpha-3"),
        ...overrides,
    };
}

function outcome(before: HostState, after: HostState, activated = true): DeployOutcome {
    return {
        before,
        after,
        copy: { pathsCopied: 2, bytesCopied: 64_000, closurePaths: 3, closureBytes: 69_000 },
        activated,
        activatedAt: "2025-01-02T03:04:05.000Z",
        timings: {},
        sshHandshakes: 1,
    };
}

const record = (generation: number, path: string, activatedAt = "2024-12-01T00:00:00.000Z"): DeploymentRecord => ({
    generation,
    storePath: path,
    action: "switch",
    activatedAt,
});

const asProps = (value: object) => value as unknown as Record<string, unknown>;

describe("recordedSide (the plan's old side, read from the state)", () => {
    it("takes only store paths: a recorded value that is not one never reaches Nix's arguments", () => {
        const drv = drvPath("nixos-system-alpha-2");
        expect(recordedSide({ storePath: v2, drvPath: drv })).toEqual({ storePath: v2, drvPath: drv });
        expect(recordedSide({ storePath: v2, drvPath: "--option" })).toEqual({ storePath: v2 });
        expect(recordedSide({ storePath: v2, drvPath: v2 })).toEqual({ storePath: v2 });
        expect(recordedSide({ storePath: "--add-root=/etc/x", drvPath: drv })).toBeUndefined();
        expect(recordedSide({ storePath: 42 })).toBeUndefined();
    });
});

describe("changedKeys", () => {
    it("lists the input keys that differ", () => {
        const olds = asProps(inputs());
        expect(changedKeys(olds, asProps(inputs({ storePath: v2, port: 2201 })))).toEqual(["port", "storePath"]);
    });

    it("ignores drvPath (it follows storePath)", () => {
        expect(changedKeys(asProps(inputs()), asProps(inputs({ drvPath: drvPath("other") })))).toEqual([]);
    });

    it("ignores output-only properties and treats missing like undefined", () => {
        const olds = { ...asProps(inputs()), generation: 3, history: [record(3, next)], port: undefined };
        expect(changedKeys(olds, asProps(inputs()))).toEqual([]);
    });

    it("compares lists by value", () => {
        expect(changedKeys(asProps(inputs({ tags: ["web"] })), asProps(inputs({ tags: ["web"] })))).toEqual([]);
        expect(changedKeys(asProps(inputs({ tags: ["web"] })), asProps(inputs({ tags: ["web", "db"] })))).toEqual(["tags"]);
    });
});

describe("deployedStorePath", () => {
    const state: HostState = { generation: 3, profileStorePath: next, currentStorePath: v2 };
    it("is what runs for switch and test, what the profile holds for boot, nothing for dry-activate", () => {
        expect(deployedStorePath(state, "switch")).toBe(v2);
        expect(deployedStorePath(state, "test")).toBe(v2);
        expect(deployedStorePath(state, "boot")).toBe(next);
        expect(deployedStorePath(state, "dry-activate")).toBeUndefined();
    });
});

describe("outputsAfterDeploy", () => {
    const before: HostState = { generation: 2, profileStorePath: v2, currentStorePath: v2, bootedStorePath: v1 };
    const after: HostState = { generation: 3, profileStorePath: next, currentStorePath: next, bootedStorePath: v1, nixosVersion: "24.11" };

    it("records the inputs, the new state and the copy", () => {
        const outputs = outputsAfterDeploy(inputs(), outcome(before, after));
        expect(outputs).toMatchObject({
            ...inputs(),
            generation: 3,
            previousGeneration: 2,
            activatedAt: "2025-01-02T03:04:05.000Z",
            nixosVersion: "24.11",
            runningStorePath: next,
            bootedStorePath: v1,
            profileStorePath: next,
            lastDeploy: { activated: true, generationBefore: 2, generationAfter: 3, pathsCopied: 2, bytesCopied: 64_000, timings: {} },
        });
        expect(outputs.history).toEqual([
            { generation: 3, storePath: next, action: "switch", activatedAt: "2025-01-02T03:04:05.000Z", kind: "deploy", stackUpdate: null, operator: null, flake: null },
        ]);
    });

    it("puts the new deployment first in the history", () => {
        const outputs = outputsAfterDeploy(inputs(), outcome(before, after), { history: [record(2, v2), record(1, v1)] });
        expect(outputs.history.map((entry) => entry.generation)).toEqual([3, 2, 1]);
    });

    it(`keeps at most ${HISTORY_LIMIT} entries, dropping the oldest`, () => {
        const old = Array.from({ length: HISTORY_LIMIT }, (_, i) => record(HISTORY_LIMIT - i, storePath(`s-${HISTORY_LIMIT - i}`)));
        const outputs = outputsAfterDeploy(inputs(), outcome(before, { ...after, generation: HISTORY_LIMIT + 1 }), { history: old });
        expect(outputs.history).toHaveLength(HISTORY_LIMIT);
        expect(outputs.history[0]!.generation).toBe(HISTORY_LIMIT + 1);
        expect(outputs.history[HISTORY_LIMIT - 1]!.generation).toBe(2);
    });

    it("a no-op deploy adds no history entry and keeps the previous activation time and previous generation", () => {
        const old: Partial<HostOutputs> = { history: [record(3, next, "2024-12-24T00:00:00.000Z"), record(2, v2)], activatedAt: "2024-12-24T00:00:00.000Z", previousGeneration: 2 };
        const outputs = outputsAfterDeploy(inputs(), outcome(after, after, false), old);
        expect(outputs.history).toEqual(old.history);
        expect(outputs.activatedAt).toBe("2024-12-24T00:00:00.000Z");
        expect(outputs.previousGeneration).toBe(2);
    });

    it("null for what the host does not have", () => {
        const outputs = outputsAfterDeploy(inputs({ action: "test" }), outcome({ currentStorePath: v2 }, { currentStorePath: next }));
        expect(outputs).toMatchObject({ generation: null, previousGeneration: null, profileStorePath: null, nixosVersion: null, bootedStorePath: null });
        expect(outputs.history[0]).toMatchObject({ generation: null, action: "test" });
    });
});

describe("outputsAfterRead", () => {
    const deployed = (action: HostInputs["action"]): HostOutputs =>
        outputsAfterDeploy(inputs({ action }), outcome({ generation: 2, profileStorePath: v2, currentStorePath: v2 }, { generation: 3, profileStorePath: next, currentStorePath: next }));

    it("keeps the recorded derivation only while the host runs the recorded system (the plan's old side)", () => {
        const withDrv = { ...deployed("switch"), drvPath: `${next}.drv` };
        expect(outputsAfterRead(withDrv, { generation: 3, profileStorePath: next, currentStorePath: next }).drvPath).toBe(`${next}.drv`);
        expect(outputsAfterRead(withDrv, { generation: 2, profileStorePath: v2, currentStorePath: v2 })).not.toHaveProperty("drvPath");
    });

    it("switch: storePath follows what runs (drift when changed by hand)", () => {
        const read = outputsAfterRead(deployed("switch"), { generation: 2, profileStorePath: v2, currentStorePath: v2 });
        expect(read).toMatchObject({ storePath: v2, generation: 2, runningStorePath: v2, profileStorePath: v2 });
    });

    it("test: storePath follows what runs, not the profile", () => {
        const read = outputsAfterRead(deployed("test"), { generation: 3, profileStorePath: next, currentStorePath: v2 });
        expect(read.storePath).toBe(v2);
        // Generation 3 holds `next`, not the running v2: which generation holds v2 is not known.
        expect(read.generation).toBeNull();
        expect(read.profileStorePath).toBe(next);
    });

    it("test: the profile's generation when the profile holds the running system", () => {
        const read = outputsAfterRead(deployed("test"), { generation: 2, profileStorePath: v2, currentStorePath: v2 });
        expect(read).toMatchObject({ storePath: v2, generation: 2 });
    });

    it("switch: a profile moved away from the running system gives no generation (the profile's holds another path)", () => {
        const read = outputsAfterRead(deployed("switch"), { generation: 4, profileStorePath: v1, currentStorePath: next });
        expect(read).toMatchObject({ storePath: next, generation: null, runningStorePath: next, profileStorePath: v1 });
    });

    it("switch: a running system moved away from the profile gives no generation either", () => {
        const read = outputsAfterRead(deployed("switch"), { generation: 3, profileStorePath: next, currentStorePath: v1 });
        expect(read).toMatchObject({ storePath: v1, generation: null, runningStorePath: v1, profileStorePath: next });
    });

    it("switch: no profile at all gives no generation", () => {
        const read = outputsAfterRead(deployed("switch"), { currentStorePath: v1 });
        expect(read).toMatchObject({ storePath: v1, generation: null, profileStorePath: null });
    });

    it("boot: storePath follows the profile, not what runs, with the profile's generation", () => {
        const read = outputsAfterRead(deployed("boot"), { generation: 3, profileStorePath: next, currentStorePath: v2 });
        expect(read.storePath).toBe(next);
        expect(read.generation).toBe(3);
        expect(read.runningStorePath).toBe(v2);
    });

    it("keeps the recorded storePath when the host shows none, and keeps the history", () => {
        const old = deployed("switch");
        const read = outputsAfterRead(old, {});
        expect(read.storePath).toBe(next);
        expect(read.generation).toBeNull();
        expect(read.history).toEqual(old.history);
    });
});

interface LogLine {
    severity: Severity;
    urn: string;
    message: string;
    ephemeral?: boolean;
}

class FakeLogger implements EngineLogger {
    readonly lines: LogLine[] = [];
    async log(severity: Severity, urn: string, message: string, ephemeral?: boolean): Promise<void> {
        this.lines.push({ severity, urn, message, ephemeral });
    }
    messages(severity?: Severity): string[] {
        return this.lines.filter((line) => !severity || line.severity === severity).map((line) => line.message);
    }
}

function providerSetup(host = FakeHost.withGenerations(v1, v2)) {
    const runner = new FakeRunner();
    host.attach(runner);
    attachLocalNix(runner, host, new Map<string, ClosurePath[]>([[next, [{ path: next, narSize: 4_000 }, { path: lib, narSize: 60_000 }]]]));
    const logger = new FakeLogger();
    const provider = new HostProvider({ runner: runner.run, logger, version: "0.0.0-test", runtimeDir: runtimeDir() });
    return { host, runner, logger, provider };
}

describe("HostProvider", { timeout: 1000 }, () => {
    it("check accepts valid inputs unchanged", async () => {
        const { provider } = providerSetup();
        const news = asProps(inputs());
        expect(await provider.check(URN, {}, news)).toEqual({ inputs: news });
    });

    it("a preview's check keeps the recorded provenance where its program sends none (the engine would show it removed); an update's and an unknown run's do not", async () => {
        const recorded = { stackUpdate: 4, operator: "ops@desk", flake: null };
        const olds = asProps({ ...inputs(), provenance: recorded });
        const news = asProps(inputs());
        const preview = providerSetup();
        await preview.provider.invoke(PROVIDER_INFO_TOKEN, { dryRun: true });
        expect((await preview.provider.check(URN, olds, news)).inputs).toMatchObject({ provenance: recorded });
        // The program's own provenance stands.
        const own = { stackUpdate: 5, operator: "me@laptop", flake: null };
        expect((await preview.provider.check(URN, olds, asProps({ ...inputs(), provenance: own }))).inputs).toMatchObject({ provenance: own });
        // Nothing recorded (or not a provenance): nothing stands in.
        expect((await preview.provider.check(URN, {}, news)).inputs).not.toHaveProperty("provenance");
        expect((await preview.provider.check(URN, { ...olds, provenance: "x" }, news)).inputs).not.toHaveProperty("provenance");
        for (const said of [{ dryRun: false }, undefined]) {
            const other = providerSetup();
            if (said) await other.provider.invoke(PROVIDER_INFO_TOKEN, said);
            expect((await other.provider.check(URN, olds, news)).inputs).not.toHaveProperty("provenance");
        }
    });

    it("check shows the plan of a host new to the stack (it gets no diff); a recorded host's plan comes from diff", async () => {
        const { provider, logger } = providerSetup();
        const news = asProps(inputs());
        await provider.check(URN, {}, news);
        expect(logger.messages("info")).toEqual([expect.stringMatching(/^alpha: plan\n  system: \(none recorded\) → \w{8}-.*\n  packages: unknown \(no recorded deployment to compare with\); build: /)]);
        await provider.check(URN, news, news);
        expect(logger.messages("info")).toHaveLength(1);
    });

    it("check refuses a host registered without evaluation (a targeted run's other hosts), saying how to deploy it", async () => {
        const { provider } = providerSetup();
        const { storePath: _s, drvPath: _d, ...settings } = asProps(inputs());
        const result = await provider.check(URN, {}, { ...settings, notEvaluated: "not targeted" });
        expect(result.inputs).toBeUndefined();
        expect(result.failures).toEqual([{ property: "storePath", reason: expect.stringMatching(/^alpha was not evaluated in this run \(not targeted\).*npm run deploy -- --hosts alpha/) }]);
    });

    it("check failures name each bad property", async () => {
        const { provider } = providerSetup();
        const result = await provider.check(URN, {}, asProps(inputs({ port: 70_000, storePath: "/tmp/not-a-store-path", address: "-oProxyCommand=x" })));
        expect(result.inputs).toBeUndefined();
        const properties = result.failures!.map((failure) => failure.property).sort();
        expect(properties).toEqual(["address", "port", "storePath"]);
        expect(result.failures!.find((failure) => failure.property === "storePath")!.reason).toContain("Nix store path");
        expect(result.failures!.find((failure) => failure.property === "address")!.reason).toContain("must not start with '-'");
    });

    it("check applies the host-file rules to connection inputs a program passes directly (the library's Host)", async () => {
        const { provider } = providerSetup();
        const cases: [Partial<HostInputs>, string, RegExp][] = [
            [{ address: "root@203.0.113.7" }, "address", /contains a user.*write "address: 203\.0\.113\.7" and "user: root"/],
            [{ address: "203.0.113.7:2222" }, "address", /contains a port/],
            [{ address: "web 1" }, "address", /expected a host name, IP address or ssh_config alias/],
            [{ hostKey: "ssh-ed25519 AAAA" }, "hostKey", /not a valid ssh-ed25519 key/],
            [{ hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n* ssh-ed25519 AAAA" }, "hostKey", /host key/],
            [{ proxyJump: "bastion\n  ProxyCommand touch /tmp/x" }, "proxyJump", /jump list/],
        ];
        for (const [override, property, reason] of cases) {
            const result = await provider.check(URN, {}, asProps(inputs(override)));
            expect(result.inputs, JSON.stringify(override)).toBeUndefined();
            expect(result.failures, JSON.stringify(override)).toEqual([{ property, reason: expect.stringMatching(reason) }]);
        }
        // A name (the library's Host defaults it to the resource name) that cannot name the host's ssh files.
        for (const name of ["web 1", "../x", "a/b"]) {
            const result = await provider.check(URN, {}, asProps(inputs({ name })));
            expect(result.failures, name).toEqual([{ property: "name", reason: expect.stringMatching(/must be a name of letters, digits/) }]);
        }
        const good = asProps(inputs({ address: "2001:db8::7", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@web1", proxyJump: "ops@bastion:2222" }));
        expect(await provider.check(URN, {}, good)).toEqual({ inputs: good });
    });

    it("check warns about a host without host-key checking, naming it, at every check (every preview and up)", async () => {
        const { provider, logger } = providerSetup();
        const news = asProps(inputs({ insecureSkipHostKeyCheck: true }));
        expect(await provider.check(URN, {}, news)).toEqual({ inputs: news });
        await provider.check(URN, {}, news);
        const warnings = logger.lines.filter((line) => line.severity === "warning");
        expect(warnings).toHaveLength(2);
        expect(warnings[0]).toMatchObject({ urn: URN });
        expect(warnings[0]!.message).toMatch(/^alpha: insecureSkipHostKeyCheck is true: .*alpha\.example\.org/);
        expect(warnings[0]!.ephemeral).toBeFalsy();
    });

    it("check logs no warning for a host with host-key checking", async () => {
        const { provider, logger } = providerSetup();
        await provider.check(URN, {}, asProps(inputs({ insecureSkipHostKeyCheck: false })));
        await provider.check(URN, {}, asProps(inputs()));
        expect(logger.messages("warning")).toEqual([]);
    });

    it("check refuses ssh options outside the allow-list (inputs may come from elsewhere than our host files)", async () => {
        const { provider } = providerSetup();
        const result = await provider.check(URN, {}, asProps(inputs({ sshOptions: ["Compression=yes", "ProxyCommand=touch${IFS}/tmp/x"] })));
        expect(result.failures).toEqual([{ property: "sshOptions.1", reason: expect.stringMatching(/runs a local command/) }]);
    });

    it("check names a missing property", async () => {
        const { provider } = providerSetup();
        const { flake: _flake, ...rest } = inputs();
        const result = await provider.check(URN, {}, asProps(rest));
        expect(result.failures!.map((failure) => failure.property)).toEqual(["flake"]);
    });

    it("diff reports changes but never a replacement", async () => {
        const { provider } = providerSetup();
        const olds = asProps(inputs());
        expect(await provider.diff("alpha", URN, olds, asProps(inputs()))).toEqual({ changes: false, replaces: [], deleteBeforeReplace: false });
        const renamed = await provider.diff("alpha", URN, olds, asProps(inputs({ name: "beta", address: "beta", storePath: v2 })));
        expect(renamed).toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
    });

    describe("diff: convergence with what the host really has", () => {
        const handMoved = "/nix/store/hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh-nixos-system-alpha-hand";
        /** What the stack recorded after deploying `next`, then refreshing a host whose profile or running system moved. */
        const recorded = (facts: Partial<HostOutputs>, action: HostInputs["action"] = "switch") =>
            asProps({
                ...outputsAfterDeploy(inputs({ action }), outcome({ generation: 2, profileStorePath: v2, currentStorePath: v2 }, { generation: 3, profileStorePath: next, currentStorePath: next })),
                ...facts,
            });

        it("a profile moved by hand (recorded profile ≠ recorded storePath) makes the host a change, with a warning naming both", async () => {
            const { provider, logger } = providerSetup();
            const olds = recorded({ profileStorePath: handMoved, generation: 4 });
            expect(changedKeys(olds, asProps(inputs()))).toEqual([]);
            expect(await provider.diff("alpha", URN, olds, asProps(inputs()))).toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
            expect(logger.lines).toEqual([
                {
                    severity: "warning",
                    urn: URN,
                    message: `alpha: the host's system profile (${handMoved}) is not the configured ${next}: this update makes them agree`,
                    ephemeral: undefined,
                },
            ]);
        });

        it("a running system that is not the recorded one (switch host) is a change too; both facts in one warning", async () => {
            const { provider, logger } = providerSetup();
            const olds = recorded({ profileStorePath: handMoved, runningStorePath: v1 });
            expect(convergenceKeys(olds, asProps(inputs()))).toEqual(["profileStorePath", "runningStorePath"]);
            expect((await provider.diff("alpha", URN, olds, asProps(inputs()))).changes).toBe(true);
            expect(logger.messages("warning")).toEqual([
                `alpha: the host's system profile (${handMoved}) and running system (${v1}) is not the configured ${next}: this update makes them agree`,
            ]);
        });

        it("an ordinary configuration change is a change without any warning", async () => {
            const { provider, logger } = providerSetup();
            const olds = recorded({});
            const news = asProps(inputs({ storePath: storePath("nixos-system-alpha-4") }));
            expect(convergenceKeys(olds, news)).toEqual([]);
            expect(await provider.diff("alpha", URN, olds, news)).toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
            expect(logger.messages("warning")).toEqual([]);
            // The change's plan goes to the host's row (deploy/plan.ts; its content is tested there).
            const [plan, ...more] = logger.messages("info");
            expect(more).toEqual([]);
            expect(plan).toMatch(/^alpha: plan\n  system: \w{8}-nixos-system-alpha[^ ]* → \w{8}-nixos-system-alpha-4\n  packages: /);
        });

        it("an update's plan (the program said so: providerInfo dryRun false) skips the build and copy counts; a preview's has them", async () => {
            const news = asProps(inputs({ storePath: storePath("nixos-system-alpha-4") }));
            const queries = (runner: FakeRunner) => runner.calls.map((call) => call.argv.join(" ")).filter((line) => /--dry-run|path-info/.test(line));
            const update = providerSetup();
            await update.provider.invoke(PROVIDER_INFO_TOKEN, { dryRun: false });
            await update.provider.diff("alpha", URN, recorded({}), news);
            await vi.waitFor(() => expect(update.logger.messages("info")[0]).toContain(`; build and copy: ${COUNTED_BY_PREVIEW}\n`));
            expect(queries(update.runner)).toEqual([]);
            for (const said of [{ dryRun: true }, {}]) {
                const preview = providerSetup();
                await preview.provider.invoke(PROVIDER_INFO_TOKEN, said);
                await preview.provider.diff("alpha", URN, recorded({}), news);
                expect(preview.logger.messages("info")[0]).not.toContain(COUNTED_BY_PREVIEW);
                expect(queries(preview.runner).length).toBeGreaterThan(0);
            }
        });

        it("a host that agrees with the state and the configuration: no change, no warning", async () => {
            const { provider, logger } = providerSetup();
            expect(await provider.diff("alpha", URN, recorded({}), asProps(inputs()))).toEqual({ changes: false, replaces: [], deleteBeforeReplace: false });
            expect(logger.lines).toEqual([]);
        });

        it("a profile already at the configured system is no reason for a change", () => {
            // E.g. an interrupted deploy of the configured system set the profile, then refresh recorded it.
            const olds = recorded({ storePath: v2, profileStorePath: next, runningStorePath: v2 });
            expect(convergenceKeys(olds, asProps(inputs()))).toEqual([]);
        });

        it("the running system does not matter for a boot host, nor the profile for a test host", () => {
            expect(convergenceKeys(recorded({ runningStorePath: v1 }, "boot"), asProps(inputs({ action: "boot" })))).toEqual([]);
            expect(convergenceKeys(recorded({ profileStorePath: handMoved }, "test"), asProps(inputs({ action: "test" })))).toEqual([]);
            expect(convergenceKeys(recorded({ runningStorePath: v1 }, "test"), asProps(inputs({ action: "test" })))).toEqual(["runningStorePath"]);
        });

        it("update then makes profile and running system agree with the configuration", async () => {
            const { provider, host } = providerSetup();
            const created = (await provider.create(URN, asProps(inputs()))).outs as HostOutputs;
            // Someone moved the profile back to generation 2 by hand, without switching.
            host.state.profileGeneration = 2;
            const refreshed = (await provider.read("alpha", URN, asProps(created))).props as HostOutputs;
            // Generation 2 holds v2, not the running `next`: no generation is recorded for it.
            expect(refreshed).toMatchObject({ storePath: next, generation: null, profileStorePath: v2, runningStorePath: next });
            expect((await provider.diff("alpha", URN, asProps(refreshed), asProps(inputs()))).changes).toBe(true);
            const outs = (await provider.update("alpha", URN, asProps(refreshed), asProps(inputs()))).outs as HostOutputs;
            expect(outs).toMatchObject({ storePath: next, profileStorePath: next, runningStorePath: next, generation: 4 });
            expect(host.state).toMatchObject({ profileGeneration: 4, current: next, bootDefault: next });
        });
    });

    it("create deploys the host and returns id = host name with the recorded generation", async () => {
        const { provider, host, logger } = providerSetup();
        const result = await provider.create(URN, asProps(inputs()));
        expect(result.id).toBe("alpha");
        const outs = result.outs as HostOutputs;
        expect(outs).toMatchObject({ name: "alpha", storePath: next, generation: 3, previousGeneration: 2, runningStorePath: next, lastDeploy: { pathsCopied: 2, bytesCopied: 64_000, generationBefore: 2, generationAfter: 3 } });
        expect(outs.history).toHaveLength(1);
        expect(host.state.current).toBe(next);
        // Progress lines are ephemeral and name the host; the summary is not.
        expect(logger.lines.filter((line) => line.ephemeral).map((line) => line.message)).toContain("alpha: connect");
        expect(logger.lines.every((line) => line.urn === URN)).toBe(true);
        const summary = logger.lines[logger.lines.length - 1]!;
        expect(summary).toMatchObject({ severity: "info", message: "alpha: switch done, generation 2 → 3, copied 2 paths (64000 bytes)" });
        expect(summary.ephemeral).toBeFalsy();
    });

    describe("with a build host", () => {
        const builder = { name: "bb", address: "10.0.0.9", user: "root", port: 2209 };
        const onBuilder = (call: RecordedCall) => /\/b\d+\/bb\.sock$/.test(sshOption(call.argv, "ControlPath") ?? "");

        it("check refuses buildHost with buildOn: target (the library's Host passes inputs directly)", async () => {
            const { provider, runner } = providerSetup();
            const result = await provider.check(URN, {}, asProps(inputs({ buildHost: builder, buildOn: "target" })));
            expect(result.inputs).toBeUndefined();
            expect(result.failures).toEqual([{ property: "buildHost", reason: expect.stringMatching(/^buildHost contradicts buildOn: target/) }]);
            expect(runner.calls).toHaveLength(0);
        });

        it("check shows where the system is built; create builds it there and records builtOn", async () => {
            const { provider, host, logger, runner } = providerSetup();
            runner.on(local("copy", "--no-check-sigs", "--derivation", "--to"), {});
            runner.on((call) => onBuilder(call) && remote("nix-store", "--realise")(call), { stdout: `${next}\n` });
            runner.on((call) => onBuilder(call) && remote("nix")(call), { stdout: JSON.stringify([{ path: next, narSize: 4_000 }, { path: lib, narSize: 60_000 }]) });
            runner.on(local("copy", "--no-check-sigs", "--from"), () => {
                host.state.store.add(next);
                host.state.store.add(lib);
                return {};
            });
            const news = asProps(inputs({ buildHost: builder }));
            await provider.check(URN, {}, news);
            expect(logger.messages("info")[0]).toMatch(/^alpha: plan\n  system: .*\n  built on: bb \(buildHost\)\n/);
            const outs = (await provider.create(URN, news)).outs as HostOutputs;
            expect(outs.lastDeploy).toMatchObject({ builtOn: "bb", pathsCopied: 2 });
            expect(outs.buildHost).toEqual(builder);
            expect(logger.lines[logger.lines.length - 1]!.message).toBe("alpha: switch done, generation 2 → 3, built on bb, copied 2 paths (64000 bytes)");
            // Nothing built here.
            expect(runner.matching(local("nix-store", "--realise"))).toHaveLength(0);
        });

        it("a host built here records builtOn: local; another build host alone is no change", async () => {
            const { provider } = providerSetup();
            const outs = (await provider.create(URN, asProps(inputs()))).outs as HostOutputs;
            expect(outs.lastDeploy.builtOn).toBe("local");
            const diff = await provider.diff("alpha", URN, asProps(outs), asProps(inputs({ buildHost: builder })));
            expect(diff.changes).toBe(false);
        });
    });

    it("create rejects inputs that fail the schema without touching the host", async () => {
        const { provider, runner } = providerSetup();
        await expect(provider.create(URN, asProps(inputs({ storePath: "nope" })))).rejects.toThrow();
        expect(runner.calls).toHaveLength(0);
    });

    it("create of a host whose key is not the known one ends at once: the host's own build (the SharedBuilder's) is stopped with SIGTERM", async () => {
        const { provider, runner } = providerSetup();
        runner.on(masterStart, { code: 255, stderr: "Host key verification failed.\r\n" });
        // The build answers only when stopped.
        runner.on(local("nix-store", "--realise"), (call) => new Promise((resolve) => call.options.signal?.addEventListener("abort", () => resolve({ code: null, signal: "SIGTERM" }))));
        const failure = await provider.create(URN, asProps(inputs())).then(
            () => undefined,
            (error: unknown) => error,
        );
        expect((failure as Error).message).toMatch(/^host alpha: connect failed: the host key of .* is not known/);
        const [build] = runner.matching(local("nix-store", "--realise"));
        expect(build?.options.signal?.aborted).toBe(true);
        expect(build?.options.abortSignal).toBe("SIGTERM");
    });

    it("update after a failed activation throws the formatted error naming host and phase", async () => {
        const { provider, host } = providerSetup();
        host.failingSystems.add(next);
        const olds = asProps(outputsAfterDeploy(inputs({ storePath: v2 }), outcome({ generation: 1 }, { generation: 2, currentStorePath: v2, profileStorePath: v2 })));
        const failure = await provider.update("alpha", URN, olds, asProps(inputs())).then(
            () => undefined,
            (error: unknown) => error,
        );
        expect(failure).toBeInstanceOf(Error);
        const text = (failure as Error).message;
        expect(text.split("\n")[0]).toBe(
            "host alpha: activate failed: switch-to-configuration switch exited with 1; the deployer restored it to generation 2 " +
                "(profile back to generation 2, boot default back to the previous generation, re-activated the previously running system)",
        );
        expect(text).toContain("  | error: the unit foo.service failed to start");
        expect(text).toContain("  hint: fix the configuration");
        expect(host.state).toMatchObject({ profileGeneration: 2, current: v2 });
    });

    it("update whose reboot does not come back: a partial failure whose properties record the activation and the unknown reboot", async () => {
        const { provider, host, logger } = providerSetup();
        host.kernels.set(next, "/nix/store/jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj-linux-6.6.2");
        host.onReboot = { downFor: Infinity };
        // The smallest bound (1 s), in fake time: no real waiting.
        const news = asProps(inputs({ reboot: "auto", rebootTimeout: 1 }));
        const olds = asProps(outputsAfterDeploy(inputs({ storePath: v2 }), outcome({ generation: 1 }, { generation: 2, currentStorePath: v2, profileStorePath: v2 })));
        const { value: failure } = await inFakeTime(() =>
            provider.update("alpha", URN, olds, news).then(
                () => undefined,
                (error: unknown) => error as Error & { id?: string; properties?: HostOutputs; reasons?: string[] },
            ),
        );
        if (!failure) throw new Error("the update did not fail");
        expect(failure.message.split("\n")[0]).toMatch(/^host alpha: reboot: outcome unknown: the host did not come back from the reboot within 1s \(waited 1s; last: /);
        // id and properties: the SDK sends them as ErrorResourceInitFailed; the engine records them.
        expect(failure.id).toBe("alpha");
        expect(failure.reasons).toEqual([failure.message]);
        expect(failure.properties).toMatchObject({ storePath: next, generation: 3, runningStorePath: next, lastReboot: { outcome: "unknown", previousBootId: "boot-1", bootId: null, bootedStorePath: null } });
        expect(failure.properties?.lastReboot?.error).toMatch(/hint: check the host's console/);
        expect(failure.properties).not.toHaveProperty("rebootNeeded");
        expect(logger.messages("info").join("\n")).toMatch(/alpha: rebooting \(boot id boot-1\); waiting up to 1s for the new boot/);
    });

    it("update with reboot never: the state and a warning say a reboot is needed", async () => {
        const { provider, host, logger } = providerSetup();
        host.kernels.set(next, "/nix/store/jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj-linux-6.6.2");
        const olds = asProps(outputsAfterDeploy(inputs({ storePath: v2 }), outcome({ generation: 1 }, { generation: 2, currentStorePath: v2, profileStorePath: v2 })));
        const outs = (await provider.update("alpha", URN, olds, asProps(inputs()))).outs as HostOutputs;
        expect(outs.rebootNeeded).toBe("kernel, initrd, kernel-modules changed");
        expect(logger.messages("warning")).toContain("alpha: reboot needed (kernel, initrd, kernel-modules changed); reboot is never");
    });

    it("an update's diff does not wait for the host's plan (the shared build starts meanwhile); its deploy's lines come after the plan", async () => {
        const { provider, runner, logger } = providerSetup();
        await provider.invoke(PROVIDER_INFO_TOKEN, { dryRun: false });
        let release!: () => void;
        const held = new Promise<void>((resolve) => (release = resolve));
        // The plan's package query answers only once the deploy is under way.
        runner.once(local("nix-store", "--query", "--requisites"), async () => {
            await held;
            return { code: 1, stderr: "not here" };
        });
        const olds = asProps(outputsAfterDeploy(inputs({ storePath: v2 }), outcome({ generation: 1 }, { generation: 2, currentStorePath: v2, profileStorePath: v2 })));
        const news = asProps(inputs());
        expect((await provider.diff("alpha", URN, olds, news)).changes).toBe(true);
        expect(logger.messages("info")).toEqual([]);
        const updating = provider.update("alpha", URN, olds, news);
        await vi.waitFor(() => expect(runner.calls.some((call) => call.isMasterStart)).toBe(true));
        expect(logger.messages("info")).toEqual([]);
        release();
        await updating;
        const lines = logger.messages("info");
        expect(lines[0]).toMatch(/^alpha: plan\n/);
        expect(lines.slice(1).some((line) => line.startsWith("alpha: build"))).toBe(true);
        expect(lines[lines.length - 1]).toMatch(/^alpha: switch done, generation 2 → 3/);
    });

    describe("an update's plan whose Nix query hangs (a stuck nix-daemon) holds the finished deploy only for a while", () => {
        const hungQuery = (runner: FakeRunner, answer: (call: RecordedCall) => Promise<Partial<{ code: number | null; signal: NodeJS.Signals; timedOut: boolean; stderr: string }>>) => {
            // Both sides of the package diff ask; neither answers on its own.
            for (let i = 0; i < 2; i++) runner.once(local("nix-store", "--query", "--requisites"), answer);
        };
        const olds = () => asProps(outputsAfterDeploy(inputs({ storePath: v2, drvPath: drvPath("nixos-system-alpha-2") }), outcome({ generation: 1 }, { generation: 2, currentStorePath: v2, profileStorePath: v2 })));

        it("Ctrl-C (the engine's cancel) ends the plan's queries: the deploy that is done returns, its plan says unknown and why", async () => {
            const { provider, runner, logger, host } = providerSetup();
            await provider.invoke(PROVIDER_INFO_TOKEN, { dryRun: false });
            hungQuery(runner, (call) => new Promise((resolve) => call.options.signal?.addEventListener("abort", () => resolve({ code: null, signal: "SIGKILL" }))));
            expect((await provider.diff("alpha", URN, olds(), asProps(inputs()))).changes).toBe(true);
            let returned = false;
            const updating = provider.update("alpha", URN, olds(), asProps(inputs())).finally(() => (returned = true));
            // The host is switched; the update waits for the plan line (the deploy's lines come after it).
            await vi.waitFor(() => expect(host.state.current).toBe(next));
            await new Promise((resolve) => setTimeout(resolve, 20));
            expect(returned).toBe(false);
            await provider.cancel();
            const outs = (await updating).outs as HostOutputs;
            expect(outs.runningStorePath).toBe(next);
            const lines = logger.messages("info");
            expect(lines[0]).toMatch(/^alpha: plan\n  system: .*\n  packages: unknown \(/);
            expect(lines[0]).toMatch(/nix-store --query --requisites \S+ was killed \(SIGKILL\)/);
            expect(lines[0]).not.toMatch(/not in this machine's Nix store/);
            expect(lines[lines.length - 1]).toMatch(/^alpha: switch done, generation 2 → 3/);
        });

        it("without Ctrl-C, each query ends after its timeout", async () => {
            const { provider, runner, logger } = providerSetup();
            await provider.invoke(PROVIDER_INFO_TOKEN, { dryRun: false });
            const limits: Array<number | undefined> = [];
            hungQuery(runner, async (call) => {
                limits.push(call.options.timeoutMs);
                if (call.options.timeoutMs === undefined) return new Promise<never>(() => undefined);
                return { code: null, signal: "SIGKILL", timedOut: true };
            });
            await provider.diff("alpha", URN, olds(), asProps(inputs()));
            await provider.update("alpha", URN, olds(), asProps(inputs()));
            expect(limits).toHaveLength(2);
            for (const limit of limits) expect(limit).toBeLessThanOrEqual(60_000);
            expect(logger.messages("info")[0]).toMatch(/packages: unknown \(.*nix-store --query --requisites \S+ timed out/);
        });
    });

    it("a preview's plan queries are bounded too: a stuck query ends after its timeout, or at once on Ctrl-C, and the plan says unknown", async () => {
        const olds = asProps(outputsAfterDeploy(inputs({ storePath: v2, drvPath: drvPath("nixos-system-alpha-2") }), outcome({ generation: 1 }, { generation: 2, currentStorePath: v2, profileStorePath: v2 })));
        const timed = providerSetup();
        await timed.provider.invoke(PROVIDER_INFO_TOKEN, { dryRun: true });
        const limits: Array<number | undefined> = [];
        for (let i = 0; i < 2; i++) {
            timed.runner.once(local("nix-store", "--query", "--requisites"), async (call) => {
                limits.push(call.options.timeoutMs);
                if (call.options.timeoutMs === undefined) return new Promise<never>(() => undefined);
                return { code: null, signal: "SIGKILL", timedOut: true };
            });
        }
        await timed.provider.diff("alpha", URN, olds, asProps(inputs()));
        expect(limits).toHaveLength(2);
        for (const limit of limits) expect(limit).toBeLessThanOrEqual(60_000);
        expect(timed.logger.messages("info")[0]).toMatch(/packages: unknown \(.*nix-store --query --requisites \S+ timed out/);
        const cancelled = providerSetup();
        await cancelled.provider.invoke(PROVIDER_INFO_TOKEN, { dryRun: true });
        for (let i = 0; i < 2; i++) {
            cancelled.runner.once(local("nix-store", "--query", "--requisites"), (call) => new Promise((resolve) => call.options.signal?.addEventListener("abort", () => resolve({ code: null, signal: "SIGKILL" }))));
        }
        const diffing = cancelled.provider.diff("alpha", URN, olds, asProps(inputs()));
        await new Promise((resolve) => setTimeout(resolve, 10));
        await cancelled.provider.cancel();
        expect((await diffing).changes).toBe(true);
        expect(cancelled.logger.messages("info")[0]).toMatch(/was killed \(SIGKILL\)/);
    });

    it("an update's plan queries wait until the engine has diffed the rest of the build group (it diffs one host after another)", async () => {
        const { provider, runner, logger } = providerSetup();
        await provider.invoke(PROVIDER_INFO_TOKEN, { dryRun: false });
        const group = ["alpha", "beta"];
        const olds = asProps(outputsAfterDeploy(inputs({ storePath: v2 }), outcome({ generation: 1 }, { generation: 2, currentStorePath: v2, profileStorePath: v2 })));
        const planQueries = () => runner.calls.filter((call) => call.argv[0] === "nix-store" && call.argv.includes("--query"));
        expect((await provider.diff("alpha", URN, olds, asProps(inputs({ buildGroup: group })))).changes).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 5));
        expect(planQueries()).toEqual([]);
        const beta = inputs({ name: "beta", address: "beta.example.org", buildGroup: group });
        await provider.diff("beta", URN.replace("alpha", "beta"), asProps({ ...beta }), asProps(beta));
        await vi.waitFor(() => expect(logger.messages("info").some((line) => line.startsWith("alpha: plan\n"))).toBe(true));
        expect(planQueries().length).toBeGreaterThan(0);
    });

    it("update of a host that goes away during activation: 'outcome unknown', never 'failed' nor 'restored'", async () => {
        const { provider, host, runner } = providerSetup();
        host.followDrops.push({ downFor: Infinity });
        // A reconnect bound shorter than the first backoff step: no waiting.
        const news = asProps(inputs({ reconnectTimeout: 0.001 }));
        const olds = asProps(outputsAfterDeploy(inputs({ storePath: v2 }), outcome({ generation: 1 }, { generation: 2, currentStorePath: v2, profileStorePath: v2 })));
        const failure = await provider.update("alpha", URN, olds, news).then(
            () => undefined,
            (error: unknown) => error,
        );
        const text = (failure as Error).message;
        expect(text.split("\n")[0]).toMatch(/^host alpha: activate: outcome unknown: the connection was lost during activation and the host did not answer again within 0.001s/);
        expect(text).not.toMatch(/activate failed|restored it/);
        expect(runner.remoteCommands().filter((command) => command.includes("--switch-generation"))).toEqual([]);
        expect(host.restores).toEqual([]);
        expect(host.state).toMatchObject({ profileGeneration: 3, current: next });
    });

    it("update of a host already running the system adds no history entry", async () => {
        const { provider, logger } = providerSetup();
        const first = (await provider.create(URN, asProps(inputs()))).outs as HostOutputs;
        const second = (await provider.update("alpha", URN, asProps(first), asProps(inputs()))).outs as HostOutputs;
        expect(second.history).toEqual(first.history);
        expect(second.generation).toBe(3);
        expect(second.activatedAt).toBe(first.activatedAt);
        expect(logger.messages("info")).toContain(`alpha: already running ${next}`);
    });

    it("update reports the generation change from the recorded state", async () => {
        const { provider, logger } = providerSetup();
        const olds = asProps(outputsAfterDeploy(inputs({ storePath: v2 }), outcome({ generation: 1 }, { generation: 2, currentStorePath: v2, profileStorePath: v2 })));
        const outs = (await provider.update("alpha", URN, olds, asProps(inputs()))).outs as HostOutputs;
        expect(outs.history.map((entry) => entry.generation)).toEqual([3, 2]);
        expect(logger.messages("info")).toContain("alpha: switch done, generation 2 → 3, copied 2 paths (64000 bytes)");
    });

    it("read reports drift when the host was changed by hand, and returns what it runs", async () => {
        const { provider, host, logger } = providerSetup();
        const created = (await provider.create(URN, asProps(inputs()))).outs as HostOutputs;
        // Someone rolled back by hand.
        host.state.profileGeneration = 2;
        host.state.current = v2;
        const result = await provider.read("alpha", URN, asProps(created));
        expect(result.id).toBe("alpha");
        expect(result.props).toMatchObject({ storePath: v2, generation: 2, runningStorePath: v2 });
        expect(result.inputs).toMatchObject({ storePath: v2, name: "alpha" });
        expect(result.inputs).not.toHaveProperty("history");
        expect(result.inputs).not.toHaveProperty("generation");
        const warnings = logger.messages("warning");
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toContain(`alpha: drift: the stack recorded generation 3 (${next}), the host runs generation 2 (${v2})`);
    });

    it("read without drift logs no warning and keeps the state", async () => {
        const { provider, logger } = providerSetup();
        const created = (await provider.create(URN, asProps(inputs()))).outs as HostOutputs;
        const result = await provider.read("alpha", URN, asProps(created));
        expect(result.props).toMatchObject({ storePath: next, generation: 3 });
        expect(logger.messages("warning")).toEqual([]);
    });

    it("read of an unreachable host keeps its recorded state, marks it unreachable and names it in a warning and an error", async () => {
        const { provider, runner, logger } = providerSetup();
        const created = (await provider.create(URN, asProps(inputs()))).outs as HostOutputs;
        logger.lines.length = 0;
        runner.on((call) => call.isMasterStart, { code: 255, stderr: "ssh: Could not resolve hostname alpha.example.org: Name or service not known\r\n" });
        const result = await provider.read("alpha", URN, asProps(created));
        const { unreachable, lastSeenAt, ...kept } = result.props as HostOutputs;
        const { unreachable: _before, lastSeenAt: seenBefore, ...recorded } = created;
        expect(kept).toEqual(recorded);
        expect(lastSeenAt).toBe(seenBefore);
        expect(unreachable).toMatchObject({ error: "host alpha: connect failed: cannot resolve alpha.example.org" });
        expect(unreachable!.since).toBe(unreachable!.checkedAt);
        expect(result.inputs).toMatchObject({ storePath: next, name: "alpha" });
        expect(logger.messages("warning")).toEqual([
            `alpha: unreachable, not refreshed (connect failed: cannot resolve alpha.example.org): its last recorded state is kept (generation 3, ${next}) and marked unreachable; last seen ${seenBefore}. Run pulumi refresh again when it is back`,
        ]);
        expect(logger.messages("error")).toEqual(["alpha: not refreshed: unreachable (its recorded state is kept)"]);
    });

    it("read of a host that stays down keeps 'since'; once it is back the mark goes and lastSeenAt is that read's time", async () => {
        const times = ["2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z", "2026-01-03T00:00:00.000Z"];
        const { provider, runner } = providerSetup();
        const timed = new HostProvider({ runner: runner.run, logger: new FakeLogger(), version: "0", runtimeDir: runtimeDir(), now: () => times.shift()! });
        const created = (await provider.create(URN, asProps(inputs()))).outs as HostOutputs;
        const refused = { code: 255, stderr: "ssh: connect to host alpha.example.org port 22: Connection refused\r\n" };
        runner.once((call) => call.isMasterStart, refused).once((call) => call.isMasterStart, refused);
        const down = (await timed.read("alpha", URN, asProps(created))).props as HostOutputs;
        const stillDown = (await timed.read("alpha", URN, asProps(down))).props as HostOutputs;
        expect(stillDown.unreachable).toMatchObject({ since: "2026-01-01T00:00:00.000Z", checkedAt: "2026-01-02T00:00:00.000Z" });
        expect(stillDown.lastSeenAt).toBe(created.lastSeenAt);
        const back = (await timed.read("alpha", URN, asProps(stillDown))).props as HostOutputs;
        expect(back.unreachable).toBeNull();
        expect(back.lastSeenAt).toBe("2026-01-03T00:00:00.000Z");
    });

    it("delete touches nothing and logs that the server keeps running", async () => {
        const { provider, runner, logger, host } = providerSetup();
        await provider.delete("alpha", URN, { name: "alpha", generation: 2 });
        expect(runner.calls).toHaveLength(0);
        expect(host.activations).toEqual([]);
        expect(logger.lines).toEqual([
            { severity: "warning", urn: URN, message: "alpha: removed from the stack only; the server keeps running generation 2 untouched", ephemeral: undefined },
        ]);
    });
});

describe("profileMismatch", () => {
    it("reports a switch host whose profile is not the running system, and nothing otherwise", async () => {
        const { profileMismatch } = await import("../../../src/provider/hostProvider");
        const a = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-system-a";
        const b = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-system-b";
        expect(profileMismatch({ generation: 4, profileStorePath: b, currentStorePath: a }, "switch")).toMatch(/generation 4, .*system-b\) is not the running system \(.*system-a\)/);
        expect(profileMismatch({ generation: 4, profileStorePath: a, currentStorePath: a }, "switch")).toBeUndefined();
        expect(profileMismatch({ generation: 4, profileStorePath: b, currentStorePath: a }, "boot")).toBeUndefined();
    });
});

describe("resourceTypeOf", () => {
    it("takes the resource's own type, also for a child of another resource", async () => {
        const { resourceTypeOf } = await import("../../../src/provider/hostProvider");
        expect(resourceTypeOf("urn:pulumi:dev::nixos-fleet::nixos:index:Host::alpha")).toBe("nixos:index:Host");
        expect(resourceTypeOf("urn:pulumi:dev::nixos-fleet::nixos:index:Host$nixos:index:Hook::alpha-migrate")).toBe("nixos:index:Hook");
    });
});

describe("rollback marks: a rolled-back host is remembered, and a config without its pin never undoes it silently", () => {
    const before: HostState = { generation: 3, profileStorePath: next, currentStorePath: next };
    const back: HostState = { generation: 2, profileStorePath: v2, currentStorePath: v2 };
    const provenance = { stackUpdate: 7, operator: "alice@laptop", flake: null };
    const deployed = outputsAfterDeploy(inputs({ provenance }), outcome({ generation: 2, profileStorePath: v2, currentStorePath: v2 }, before), {
        history: [record(2, v2, "2025-01-01T00:00:00.000Z")],
    });
    const pinned = (extra: Partial<HostInputs> = {}) =>
        inputs({
            storePath: v2,
            drvPath: undefined,
            pin: { generation: 2, reason: "rollback to the previous deployment (t)", configuredStorePath: next, activatedAt: "2025-01-01T00:00:00.000Z" },
            provenance: { ...provenance, stackUpdate: 8, operator: "bob@desk" },
            ...extra,
        });

    it("a pinned deploy records the rollback: to which generation and store path, when, by whom, why", () => {
        const outputs = outputsAfterDeploy(pinned(), outcome(before, back), deployed);
        expect(outputs.rolledBack).toEqual({
            generation: 2,
            storePath: v2,
            at: "2025-01-02T03:04:05.000Z",
            by: "bob@desk",
            reason: "rollback to the previous deployment (t)",
            rollbackTo: "2025-01-01T00:00:00.000Z",
        });
        expect(deployed.rolledBack).toBeNull();
    });

    it("a pinned host updated again on the same system keeps the rollback's own time and operator; a deploy of the configuration ends it", () => {
        const rolled = outputsAfterDeploy(pinned(), outcome(before, back), deployed);
        const again = outputsAfterDeploy(pinned({ provenance: { ...provenance, operator: "carol@ci" } }), outcome(back, back, false), rolled);
        expect(again.rolledBack).toEqual(rolled.rolledBack);
        expect(outputsAfterDeploy(inputs(), outcome(back, before), rolled).rolledBack).toBeNull();
    });

    it("undoneRollback: only a rolled-back state and news that deploy another system (the configuration, or another pin)", () => {
        const rolled = asProps(outputsAfterDeploy(pinned(), outcome(before, back), deployed));
        expect(undoneRollback(rolled, asProps(inputs()))).toMatchObject({ generation: 2, storePath: v2 });
        expect(undoneRollback(rolled, asProps(pinned()))).toBeUndefined();
        // A pin to another system (a new rollback, or a stale pin from an older checkout) replaces this rollback: said too.
        expect(undoneRollback(rolled, asProps(pinned({ storePath: v1, pin: { generation: 1 } })))).toMatchObject({ generation: 2, storePath: v2 });
        expect(undoneRollback(rolled, asProps(inputs({ storePath: v2 })))).toBeUndefined();
        expect(undoneRollback(asProps(deployed), asProps(inputs({ storePath: v1 })))).toBeUndefined();
        // States written before the mark existed have none.
        expect(undoneRollback({ storePath: v2 }, asProps(inputs()))).toBeUndefined();
    });

    it("diff of a rolled-back host whose config lacks the pin: a change, with a warning on its row naming the generation, the operator and the fix", async () => {
        const { provider, logger } = providerSetup();
        const rolled = asProps(outputsAfterDeploy(pinned(), outcome(before, back), deployed));
        expect((await provider.diff("alpha", URN, rolled, asProps(inputs()))).changes).toBe(true);
        // (The host's plan follows as an info line.)
        expect(logger.lines.filter((line) => line.severity === "warning")).toEqual([
            {
                severity: "warning",
                urn: URN,
                message:
                    "alpha: this update undoes the rollback to generation 2 (by bob@desk at 2025-01-02T03:04:05.000Z): the stack's config has no rollback pin for alpha, " +
                    `so its configuration (${next}) replaces the rolled-back ${v2}. To keep the rollback, put the pin back in Pulumi.dev.yaml ` +
                    "(nixos-fleet:pins.alpha, as `npm run rollback` wrote it) and commit it; to end the rollback on purpose: npm run rollback -- --clear --hosts alpha",
                ephemeral: undefined,
            },
        ]);
    });

    it("diff of a rolled-back host whose config has a pin to another system (a stale pin from an older checkout): the warning says which rollback it replaces", async () => {
        const { provider, logger } = providerSetup();
        const rolled = asProps(outputsAfterDeploy(pinned(), outcome(before, back), deployed));
        const stale = asProps(pinned({ storePath: v1, pin: { generation: 1, reason: "rollback to generation 1 (2024-12-31T00:00:00.000Z)" } }));
        expect((await provider.diff("alpha", URN, rolled, stale)).changes).toBe(true);
        expect(logger.lines.filter((line) => !line.message.startsWith("alpha: plan")).map((line) => [line.severity, line.message])).toEqual([
            [
                "warning",
                `alpha: this update replaces the rollback to generation 2 (by bob@desk at 2025-01-02T03:04:05.000Z) (${v2}) with the config's pin to generation 1 ` +
                    `(rollback to generation 1 (2024-12-31T00:00:00.000Z)) (${v1}). If that pin is stale (an older Pulumi.dev.yaml), put back the pin the rollback wrote (nixos-fleet:pins.alpha) and commit it`,
            ],
        ]);
        const mark = undoneRollback(rolled, stale)!;
        expect(undoneRollbackReason(mark, stale, "plan")).toBe(
            "replaces the rollback to generation 2 (by bob@desk at 2025-01-02T03:04:05.000Z) with the config's pin to generation 1 (rollback to generation 1 (2024-12-31T00:00:00.000Z))",
        );
        expect(undoneRollbackReason(mark, asProps(inputs()), "done")).toBe("undid the rollback to generation 2 (by bob@desk at 2025-01-02T03:04:05.000Z)");
    });

    it("diff with the pin in place, or of a host never rolled back: no such warning", async () => {
        const { provider, logger } = providerSetup();
        const rolled = asProps(outputsAfterDeploy(pinned(), outcome(before, back), deployed));
        expect((await provider.diff("alpha", URN, rolled, asProps(pinned()))).changes).toBe(false);
        await provider.diff("alpha", URN, asProps(deployed), asProps(inputs({ storePath: v1 })));
        expect(logger.lines.filter((line) => line.severity === "warning")).toEqual([]);
        expect(logger.messages().join("\n")).not.toMatch(/undoes the rollback/);
    });

    it("describeRollback and stackOfUrn", () => {
        expect(describeRollback({ generation: null, storePath: v1, at: "T", by: null, reason: null, rollbackTo: null })).toBe(
            "the rollback to generation - (by an unknown operator at T)",
        );
        expect(stackOfUrn("urn:pulumi:prod::nixos-fleet::nixos:index:Host::psi")).toBe("prod");
    });
});

describe("unreachable hosts on refresh (pure part)", () => {
    it("keeps every recorded field, the first 'since', and falls back to activatedAt for lastSeenAt in older states", () => {
        const old = outputsAfterDeploy(inputs(), outcome({ generation: 2 }, { generation: 3, currentStorePath: next, profileStorePath: next }));
        const { lastSeenAt: _drop, ...older } = old;
        const first = outputsWhenUnreachable(older as HostOutputs, "host alpha: connect failed: refused\n  hint: x", "2026-02-01T00:00:00.000Z");
        expect(first).toMatchObject({ lastSeenAt: old.activatedAt, unreachable: { since: "2026-02-01T00:00:00.000Z", checkedAt: "2026-02-01T00:00:00.000Z", error: "host alpha: connect failed: refused" } });
        const second = outputsWhenUnreachable(first, "host alpha: connect failed: timeout", "2026-02-02T00:00:00.000Z");
        expect(second.unreachable).toEqual({ since: "2026-02-01T00:00:00.000Z", checkedAt: "2026-02-02T00:00:00.000Z", error: "host alpha: connect failed: timeout" });
        expect(second.history).toEqual(old.history);
        expect(second.storePath).toBe(old.storePath);
    });
});

describe("import (adoption): read without properties", () => {
    const configured = (): ConfiguredHost => {
        const { storePath: _s, drvPath: _d, ...rest } = inputs();
        return rest;
    };

    it("records what the host runs, with its generation, and activates nothing", async () => {
        const { runner, host } = providerSetup();
        const asked: string[][] = [];
        const logger = new FakeLogger();
        const provider = new HostProvider({
            runner: runner.run,
            logger,
            version: "0",
            runtimeDir: runtimeDir(),
            now: () => "2026-03-01T00:00:00.000Z",
            configuredInputs: async (stack, id, name) => {
                asked.push([stack, id, name]);
                return configured();
            },
        });
        const result = await provider.read("alpha", URN, {});
        expect(asked).toEqual([["dev", "alpha", "alpha"]]);
        expect(result.id).toBe("alpha");
        expect(result.props).toMatchObject({
            name: "alpha",
            storePath: v2,
            generation: 2,
            runningStorePath: v2,
            profileStorePath: v2,
            history: [],
            adoptedAt: "2026-03-01T00:00:00.000Z",
            lastSeenAt: "2026-03-01T00:00:00.000Z",
            rolledBack: null,
            lastDeploy: { activated: false, pathsCopied: 0 },
        });
        // The inputs are exactly what the program sends for a host running that system (no drvPath: not diffed).
        expect(result.inputs).toEqual(asProps({ ...configured(), storePath: v2 }));
        expect(host.activations).toEqual([]);
        expect(runner.remoteCommands().some((command) => /switch-to-configuration|nix-env .*--set|systemd-run/.test(command))).toBe(false);
        expect(logger.messages("info")).toEqual([`alpha: adopted: it runs generation 2 (${v2}); recorded without activating anything`]);
        // The program's next inputs for the same system make no change.
        expect(changedKeys(result.props!, asProps({ ...configured(), storePath: v2, drvPath: drvPath("x") }))).toEqual([]);
    });

    it("without a config reader, or for a host that runs nothing, a clear error", async () => {
        const { provider } = providerSetup();
        await expect(provider.read("alpha", URN, {})).rejects.toThrow(/cannot import hosts/);
        expect(() => adoptedOutputs(configured(), {}, "t")).toThrow(/runs no NixOS system that could be adopted/);
    });

    it("adoptedStorePath: the running system, or the profile for a boot host", () => {
        expect(adoptedStorePath({ currentStorePath: v1, profileStorePath: v2 }, "switch")).toBe(v1);
        expect(adoptedStorePath({ currentStorePath: v1, profileStorePath: v2 }, "boot")).toBe(v2);
        expect(adoptedStorePath({ profileStorePath: v2 }, "test")).toBe(v2);
    });
});

describe("import shim: a ReadRequest without properties", () => {
    it("reads as an empty Struct, as the SDK's read handler needs (it calls getProperties().toJavaScript())", async () => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const pb = require("@pulumi/pulumi/proto/provider_pb") as { ReadRequest: new () => { getProperties(): { toJavaScript(): unknown } | undefined; setId(id: string): void } };
        const { Struct } = await import("google-protobuf/google/protobuf/struct_pb");
        const request = new pb.ReadRequest();
        request.setId("alpha");
        installImportShim();
        installImportShim();
        expect(request.getProperties()!.toJavaScript()).toEqual({});
        const withProps = new pb.ReadRequest() as unknown as { setProperties(s: unknown): void; getProperties(): { toJavaScript(): unknown } };
        withProps.setProperties(Struct.fromJavaScript({ name: "alpha" }));
        expect(withProps.getProperties().toJavaScript()).toEqual({ name: "alpha" });
    });
});

describe("HostProvider and secrets", { timeout: 2000 }, () => {
    const SECRET_OPTION = "RekeyLimit=738194062517";
    const secretFile = { path: "/run/keys/dbpass", owner: "root", group: "root", mode: "0400", uploadAt: "pre-activation" as const, value: "db-s3cret-value" };
    /** The props as the engine sends them: the secret sshOptions and the file's value wrapped. */
    const wrappedNews = () =>
        ({
            ...asProps(inputs()),
            sshOptions: secretValue([SECRET_OPTION]),
            secrets: { dbpass: { ...secretFile, value: secretValue(secretFile.value) } },
        }) as Record<string, unknown>;

    it("check validates secrets unwrapped and hands the inputs back wrapped", async () => {
        const { provider } = providerSetup();
        const news = wrappedNews();
        expect(await provider.check(URN, {}, news)).toEqual({ inputs: news });
    });

    it("check failures never show a secret value", async () => {
        const { provider } = providerSetup();
        const news = { ...wrappedNews(), sshOptions: secretValue(["ProxyCommand=leak-this-secret-value"]) };
        const result = await provider.check(URN, {}, news);
        expect(JSON.stringify(result.failures)).not.toMatch(/leak-this-secret-value/);
        expect(result.failures!.map((failure) => failure.property)).toEqual(["sshOptions.0"]);
    });

    it("create returns the secret inputs wrapped in its outputs, writes the file from stdin and logs no value", async () => {
        const { provider, runner, logger } = providerSetup();
        runner.on((call) => call.remoteCommand?.[3] === "nixos-fleet-secret-put", {});
        const outs = (await provider.create(URN, wrappedNews())).outs as Record<string, unknown>;
        expect(isSecretValue(outs.sshOptions)).toBe(true);
        const secrets = outs.secrets as Record<string, Record<string, unknown>>;
        expect(isSecretValue(secrets.dbpass!.value)).toBe(true);
        expect(secrets.dbpass!.path).toBe("/run/keys/dbpass");
        const put = runner.calls.find((call) => call.remoteCommand?.[3] === "nixos-fleet-secret-put")!;
        expect(put.options.input).toBe("db-s3cret-value");
        expect(runner.calls.map((call) => call.argv.join(" ")).join("\n")).not.toMatch(/db-s3cret-value/);
        expect(logger.messages().join("\n")).not.toMatch(/db-s3cret-value|738194062517/);
    });

    it("diff compares unwrapped values, and a value that became secret is a change (the state then records it encrypted)", async () => {
        const { provider } = providerSetup();
        const plain = { ...asProps(inputs()), sshOptions: [SECRET_OPTION] };
        const wrapped = { ...asProps(inputs()), sshOptions: secretValue([SECRET_OPTION]) };
        expect((await provider.diff("alpha", URN, wrapped, wrapped)).changes).toBe(false);
        expect((await provider.diff("alpha", URN, plain, wrapped)).changes).toBe(true);
        expect(newlySecretKeys([], [["sshOptions"]])).toEqual(["sshOptions"]);
        const changedValue = { ...wrapped, sshOptions: secretValue(["RekeyLimit=1G"]) };
        expect((await provider.diff("alpha", URN, wrapped, changedValue)).changes).toBe(true);
    });

    it("diff names the secret files that change (never their values) for the preview", async () => {
        const { provider, logger } = providerSetup();
        const olds = wrappedNews();
        const news = {
            ...wrappedNews(),
            secrets: {
                dbpass: { ...secretFile, value: secretValue("another-s3cret") },
                extra: { ...secretFile, path: "/run/keys/extra", value: secretValue("x-s3cret") },
            },
        };
        expect((await provider.diff("alpha", URN, olds, news)).changes).toBe(true);
        expect(logger.messages("info")).toEqual(["alpha: secret files to write: dbpass (value changed), extra (new)"]);
        expect(secretFileChanges({ secrets: { a: secretFile, b: secretFile } }, { secrets: { a: { ...secretFile, mode: "0440" } } })).toEqual([
            "a (mode changed)",
            "b (removed: deleted from the host)",
        ]);
        expect((await provider.diff("alpha", URN, olds, wrappedNews())).changes).toBe(false);
    });

    it("read keeps secrets wrapped and drops secret files the host lost, so the next up writes them again", async () => {
        const { provider, runner, logger } = providerSetup();
        runner.on((call) => call.remoteCommand?.[3] === "nixos-fleet-secret-put", {});
        const created = (await provider.create(URN, wrappedNews())).outs as Record<string, unknown>;
        runner.on((call) => call.remoteCommand?.[3] === "nixos-fleet-secret-check", { stdout: "/run/keys/dbpass\n" });
        const read = await provider.read("alpha", URN, created);
        const props = read.props as Record<string, unknown>;
        expect(isSecretValue(props.sshOptions)).toBe(true);
        expect(props.secrets).toBeUndefined();
        expect((read.inputs as Record<string, unknown>).secrets).toBeUndefined();
        expect(logger.messages("warning").join("\n")).toMatch(/secret file\(s\) missing on the host: dbpass \(\/run\/keys\/dbpass\)/);
    });

    it("an update deletes the secrets that left the configuration", async () => {
        const { provider, runner } = providerSetup();
        runner.on((call) => call.remoteCommand?.[3] === "nixos-fleet-secret-put", {});
        runner.on((call) => call.remoteCommand?.[3] === "nixos-fleet-secret-rm", {});
        const created = (await provider.create(URN, wrappedNews())).outs as Record<string, unknown>;
        const { secrets: _gone, ...news } = wrappedNews();
        await provider.update("alpha", URN, created, news);
        const rm = runner.calls.find((call) => call.remoteCommand?.[3] === "nixos-fleet-secret-rm")!;
        expect(rm.remoteCommand!.slice(4)).toEqual(["/run/keys/dbpass"]);
        expect(secretChanges({ secrets: { a: secretFile } }, { secrets: { a: { ...secretFile, path: "/run/keys/old" } } }).removedSecrets).toEqual([
            { name: "a", path: "/run/keys/old" },
        ]);
    });
});

describe("secret markers", () => {
    it("unwraps and wraps the same places back, collecting the texts", () => {
        const value = { a: secretValue("x-secret"), b: [1, secretValue({ c: "inner-secret" })], d: "plain" };
        const plain = unwrapSecrets<Record<string, unknown>>(value);
        expect(plain.value).toEqual({ a: "x-secret", b: [1, { c: "inner-secret" }], d: "plain" });
        expect(plain.paths).toEqual([["a"], ["b", 1]]);
        expect(plain.texts.sort()).toEqual(["inner-secret", "x-secret"]);
        expect(wrapSecrets(plain.value, plain.paths)).toEqual(value);
        expect(maskSecrets('ssh said "x-secret" twice: x-secret; 22', ["x-secret", "22"])).toBe('ssh said "[secret]" twice: [secret]; 22');
    });

    it("keeps a hook's recorded output short", () => {
        const long = Array.from({ length: 100 }, (_, i) => `line ${i} ${"x".repeat(200)}`).join("\n");
        const record = hookOutputRecord(long);
        expect(record.length).toBeLessThanOrEqual(HOOK_OUTPUT_CHARS + 1);
        expect(record).toMatch(/line 99/);
        expect(hookOutputRecord("ok\n")).toBe("ok");
    });
});

describe("Hook outputs and secrets", { timeout: 2000 }, () => {
    const HOOK_URN = "urn:pulumi:dev::nixos-fleet::nixos:index:Host$nixos:index:Hook::alpha-migrate";
    const hookNews = () =>
        ({
            name: "alpha",
            address: "alpha.example.org",
            user: "root",
            sshOptions: secretValue(["RekeyLimit=738194062517"]),
            hook: "migrate",
            command: ["migrate", "--all"],
            trigger: "1:/nix/store/x",
        }) as Record<string, unknown>;

    it("records the hook's output as a secret, keeps secret inputs wrapped and masks them in the output", async () => {
        const { provider, runner } = providerSetup();
        runner.on((call) => call.remoteCommand?.[0] === "migrate", { stdout: "migrated; password=db-pass-1234\nRekeyLimit=738194062517 seen\n" });
        const outs = (await provider.create(HOOK_URN, hookNews())).outs as Record<string, unknown>;
        expect(isSecretValue(outs.output)).toBe(true);
        expect(isSecretValue(outs.sshOptions)).toBe(true);
        const output = (outs.output as { value: string }).value;
        expect(output).toMatch(/migrated; password=db-pass-1234/);
        expect(output).not.toMatch(/738194062517/);
        expect(output).toMatch(/RekeyLimit=\[secret\]|\[secret\] seen/);
    });

    it("check applies the host-file rules of hooks, refuses unknown keys and fills in the user", async () => {
        const { provider } = providerSetup();
        const cases: [Record<string, unknown>, string, RegExp][] = [
            [{ runAs: "-s" }, "runAs", /user name/],
            [{ hook: "Migrate DB" }, "hook", /hook name/],
            [{ command: "migrate --all" }, "command", /list of strings/],
            [{ runas: "postgres" }, "runas", /no input "runas"; did you mean "runAs"\?/],
        ];
        for (const [override, property, reason] of cases) {
            const result = await provider.check(HOOK_URN, {}, { ...hookNews(), ...override });
            expect(result.failures, JSON.stringify(override)).toContainEqual({ property, reason: expect.stringMatching(reason) });
        }
        const { user: _user, ...withoutUser } = hookNews();
        const checked = await provider.check(HOOK_URN, {}, withoutUser);
        expect(checked.inputs).toMatchObject({ user: "root", sshOptions: secretValue(["RekeyLimit=738194062517"]) });
    });

    it("a failing hook's error masks the secret inputs", async () => {
        const { provider, runner } = providerSetup();
        runner.on((call) => call.remoteCommand?.[0] === "migrate", { code: 1, stderr: "bad option RekeyLimit=738194062517\n" });
        const error = (await provider.create(HOOK_URN, hookNews()).catch((e: unknown) => e)) as Error;
        expect(error.message).toMatch(/hook migrate exited with 1/);
        expect(error.message).not.toMatch(/738194062517/);
    });
});

describe("HostProvider.invoke", () => {
    it("answers providerInfo with its version and refuses any other function by name", async () => {
        const provider = new HostProvider({ runner: new FakeRunner().run, logger: new FakeLogger(), version: "4.5.6", runtimeDir: runtimeDir() });
        expect(await provider.invoke(PROVIDER_INFO_TOKEN, {})).toEqual({ outputs: { version: "4.5.6" } });
        const other = await provider.invoke("nixos:index:other", {});
        expect(other.failures?.[0]?.reason).toContain("no function nixos:index:other");
    });
});

describe("HostProvider check: what a program in any language may leave out or get wrong", { timeout: 1000 }, () => {
    const { user: _u, buildOn: _b, action: _a, substituteOnDestination: _s, tags: _t, name: _n, confirmTimeout: _c, ...bare } = inputs();
    const token = { value: secretValue("s3cret-token"), path: "/run/keys/token" };

    it("fills in name (the resource's name), the host fields with defaults and each secret file's settings, keeping secrets wrapped", async () => {
        const { provider } = providerSetup();
        const result = await provider.check(URN, {}, asProps({ ...bare, secrets: { token } }));
        expect(result.failures).toBeUndefined();
        // confirmTimeout too: left out, the deploy armed no watchdog at all (0), not the documented 30 s.
        expect(result.inputs).toMatchObject({ name: "alpha", user: "root", buildOn: "local", action: "switch", substituteOnDestination: false, tags: [], confirmTimeout: 30 });
        expect((result.inputs!.secrets as Record<string, unknown>).token).toEqual({
            value: secretValue("s3cret-token"),
            path: "/run/keys/token",
            owner: "root",
            group: "root",
            mode: "0400",
            uploadAt: "pre-activation",
        });
    });

    it("returns each secret file's value as a secret also when the program sent it plain (another language: the schema's secret is not enforced)", async () => {
        const { provider } = providerSetup();
        const result = await provider.check(URN, {}, asProps({ ...inputs(), secrets: { api: { value: "plain-api-key", path: "/run/keys/api" } } }));
        const file = (result.inputs!.secrets as Record<string, Record<string, unknown>>).api!;
        expect(file.value).toEqual(secretValue("plain-api-key"));
        expect(file.path).toBe("/run/keys/api");
        // The outputs a deploy records are wrapped where its (checked) inputs were: see "HostProvider and secrets".
        expect(unwrapSecrets(result.inputs).paths).toContainEqual(["secrets", "api", "value"]);
        // A map that is secret as a whole is not wrapped again inside.
        const whole = await provider.check(URN, {}, asProps({ ...inputs(), secrets: secretValue({ api: { value: "plain-api-key", path: "/run/keys/api" } }) }));
        expect(unwrapSecrets(whole.inputs).paths).toEqual([["secrets"]]);
    });

    it("a program's health checks without their defaults give no change after a deploy (no redeploy at every up)", async () => {
        const { provider } = providerSetup();
        const checked = await provider.check(URN, {}, asProps({ ...inputs(), healthChecks: { keepGoing: true } }));
        const created = await provider.create(URN, checked.inputs!);
        const again = await provider.check(URN, created.outs!, asProps({ ...inputs(), healthChecks: { keepGoing: true } }));
        expect(await provider.diff("alpha", URN, created.outs!, again.inputs!)).toMatchObject({ changes: false });
    });

    it("applies the host-file rules to every input, and the rules between fields", async () => {
        const { provider } = providerSetup();
        const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        const cases: [Record<string, unknown>, string, RegExp][] = [
            [{ identityFile: "/keys/a -oProxyCommand=touch${IFS}/tmp/x" }, "identityFile", /whitespace/],
            [{ knownHostsFile: "-oProxyCommand=x" }, "knownHostsFile", /starts with "-"/],
            [{ sshConfigFile: "" }, "sshConfigFile", /expected a path to an ssh_config file/],
            [{ flake: "--option" }, "flake", /expected a flake reference/],
            [{ flake: "path:/srv#x" }, "flake", /contains an attribute/],
            [{ attribute: 'nixosConfigurations."a b"' }, "attribute", /dotted Nix attribute path/],
            [{ drvPath: "/nix/store/../../tmp/evil.drv" }, "drvPath", /\.drv store path/],
            [{ connectTimeout: 1e12 }, "connectTimeout", /whole number of seconds from 1 to 3600/],
            [{ confirmTimeout: 2.5 }, "confirmTimeout", /whole number of seconds from 0 to 3600/],
            [{ keepGenerations: 1e9 }, "keepGenerations", /generations/],
            [{ tags: ["web", "web"] }, "tags.1", /duplicate/],
            [{ user: "x".repeat(5000) }, "user", /expected a user name/],
            [{ address: "a".repeat(100_000) }, "address", /100000 characters long; a host name has at most 253/],
            [{ hostKey: key, insecureSkipHostKeyCheck: true }, "insecureSkipHostKeyCheck", /contradicts hostKey/],
            [{ secrets: { a: { ...token, path: "/run/keys/x" }, b: { ...token, path: "/run/keys/x" } } }, "secrets.b.path", /both write \/run\/keys\/x/],
            [{ identityfile: "/keys/a" }, "identityfile", /no input "identityfile"; did you mean "identityFile"\?/],
        ];
        for (const [override, property, reason] of cases) {
            const result = await provider.check(URN, {}, asProps({ ...inputs(), ...override }));
            expect(result.inputs, JSON.stringify(override)).toBeUndefined();
            expect(result.failures, JSON.stringify(override)).toContainEqual({ property, reason: expect.stringMatching(reason) });
        }
    });

    it("refuses a second resource with the same host name in one run (they would share one SSH master: a deploy on the wrong server)", async () => {
        const { provider } = providerSetup();
        const other = "urn:pulumi:dev::c::nixos:index:Host::alpha-eu";
        expect((await provider.check(URN, {}, asProps(inputs()))).failures).toBeUndefined();
        // The same resource again (preview, then up) is fine.
        expect((await provider.check(URN, {}, asProps(inputs()))).failures).toBeUndefined();
        const result = await provider.check(other, {}, asProps(inputs({ address: "203.0.113.9" })));
        expect(result.failures).toEqual([{ property: "name", reason: expect.stringMatching(/^alpha is also the name of alpha \(urn:pulumi:dev::nixos-fleet::nixos:index:Host::alpha\): two hosts with one name would share one SSH connection/) }]);
    });

    it("leaves inputs not known yet as they are (checked once known), with the defaults filled in", async () => {
        const { provider, logger } = providerSetup();
        const result = await provider.check(URN, {}, asProps({ ...bare, address: UNKNOWN, hostKey: UNKNOWN }));
        expect(result.failures).toBeUndefined();
        expect(result.inputs).toMatchObject({ address: UNKNOWN, hostKey: UNKNOWN, name: "alpha", user: "root" });
        expect(logger.messages("info")).toEqual([expect.stringMatching(/^alpha: address, hostKey are not known/)]);
    });
});
