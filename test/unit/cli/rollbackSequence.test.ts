// Rollbacks end to end through the pure pieces the commands use: chooseDeployment picks, pinFor
// writes the pin, pinnedInputs makes the Host's inputs, outputsAfterDeploy records what the
// provider did. The fake host keeps Nix profile semantics: a deploy makes a new generation, a
// rollback switches to the generation that holds the pinned system.
import { describe, expect, it } from "vitest";
import { chooseDeployment, pinFor, type RollbackTarget } from "../../../src/cli/rollback";
import type { DeployOutcome } from "../../../src/deploy/deployHost";
import { deploymentSteps } from "../../../src/deploy/deployments";
import { isFleetError, type FleetError } from "../../../src/errors";
import { pinnedInputs } from "../../../src/program/fleet";
import type { HostInputs, HostOutputs, Provenance } from "../../../src/provider/hostInputs";
import { outputsAfterDeploy } from "../../../src/provider/hostProvider";
import { drvPath, storePath } from "../helpers/fixtures";

const system = (n: number) => storePath(`nixos-system-psi-v${n}`);

class SimulatedHost {
    outputs?: HostOutputs;
    private readonly generations = new Map<number, string>();
    private running?: number;
    private clock = Date.parse("2026-03-01T00:00:00.000Z");
    update = 0;

    private inputs(storePath: string, provenance: Provenance): HostInputs {
        return {
            name: "psi",
            address: "psi.lab",
            user: "root",
            flake: "/srv/infra",
            attribute: "nixosConfigurations.psi",
            buildOn: "local",
            action: "switch",
            substituteOnDestination: false,
            tags: [],
            confirmTimeout: 0,
            storePath,
            drvPath: drvPath(storePath.slice(44)),
            provenance,
        };
    }

    private apply(inputs: HostInputs, generation: number): void {
        this.clock += 60_000;
        const before = this.running === undefined ? {} : { generation: this.running, currentStorePath: this.generations.get(this.running) };
        const activated = this.running !== generation;
        this.running = generation;
        const after = { generation, currentStorePath: inputs.storePath, profileStorePath: inputs.storePath };
        const outcome: DeployOutcome = {
            before,
            after,
            copy: { pathsCopied: 0, bytesCopied: 0, closurePaths: 1, closureBytes: 1 },
            activated,
            activatedAt: new Date(this.clock).toISOString(),
            timings: {},
            sshHandshakes: 1,
        };
        this.outputs = outputsAfterDeploy(inputs, outcome, this.outputs);
    }

    /** `npm run deploy` of configuration v (a new generation, like nix-env --set). */
    deploy(v: number): void {
        this.update += 1;
        const generation = Math.max(0, ...this.generations.keys()) + 1;
        this.generations.set(generation, system(v));
        this.apply(this.inputs(system(v), { stackUpdate: this.update, operator: "alice@laptop", flake: { url: "/srv/infra", revision: `rev${v}`, dirty: false, lastModified: v, narHash: null } }), generation);
    }

    /**
     * `rollback --clear` (or a config without the pin): deploys configuration v again. Like
     * nix-env --set, the profile reuses its newest generation when that holds the same system.
     */
    clear(v: number): void {
        this.update += 1;
        const newest = Math.max(0, ...this.generations.keys());
        let generation = newest;
        if (this.generations.get(newest) !== system(v)) {
            generation = newest + 1;
            this.generations.set(generation, system(v));
        }
        this.apply(this.inputs(system(v), { stackUpdate: this.update, operator: "alice@laptop", flake: null }), generation);
    }

    /** `npm run rollback`: choose, pin, deploy the pin (switching to the generation holding it). */
    rollback(target: RollbackTarget, configured = 99): void {
        const choice = chooseDeployment("psi", this.outputs, target);
        const pin = pinFor(choice, "rollback");
        this.update += 1;
        const inputs = pinnedInputs(this.inputs(system(configured), { stackUpdate: this.update, operator: "bob@desk", flake: null }), pin);
        const generation = [...this.generations].find(([n, path]) => n === pin.generation && path === pin.storePath)?.[0];
        if (generation === undefined) throw new Error("the simulated host lost the generation");
        this.apply(inputs, generation);
    }

    get runningGeneration(): number | undefined {
        return this.running;
    }
}

function thrown(work: () => unknown): FleetError {
    try {
        work();
    } catch (error) {
        if (isFleetError(error)) return error;
        throw error;
    }
    throw new Error("expected a FleetError");
}

describe("rollback semantics (Nix profiles)", () => {
    function deployed(n: number): SimulatedHost {
        const host = new SimulatedHost();
        for (let v = 1; v <= n; v++) host.deploy(v);
        return host;
    }

    it("two rollbacks in a row go back twice (4 → 3 → 2), never forward", () => {
        const host = deployed(4);
        host.rollback({ kind: "steps", steps: 1 });
        expect(host.runningGeneration).toBe(3);
        host.rollback({ kind: "steps", steps: 1 });
        expect(host.runningGeneration).toBe(2);
        host.rollback({ kind: "steps", steps: 1 });
        expect(host.runningGeneration).toBe(1);
    });

    it("--steps 2 goes back two deployments; the rollbacks themselves are not steps", () => {
        const host = deployed(5);
        host.rollback({ kind: "steps", steps: 2 });
        expect(host.runningGeneration).toBe(3);
        host.rollback({ kind: "steps", steps: 2 });
        expect(host.runningGeneration).toBe(1);
        expect(deploymentSteps(host.outputs!.history).map((entry) => entry.generation)).toEqual([5, 4, 3, 2, 1]);
        expect(host.outputs!.history.map((entry) => entry.kind)).toEqual(["rollback", "rollback", "deploy", "deploy", "deploy", "deploy", "deploy"]);
    });

    it("--steps beyond the history says where the host is and leaves it there", () => {
        const host = deployed(3);
        host.rollback({ kind: "steps", steps: 1 });
        const error = thrown(() => host.rollback({ kind: "steps", steps: 2 }));
        expect(error.message).toBe("cannot go back 2 deployment(s): the host is on generation 2, and the stack recorded only 1 deployment before it");
        expect(host.runningGeneration).toBe(2);
        host.rollback({ kind: "steps", steps: 1 });
        expect(thrown(() => host.rollback({ kind: "steps", steps: 1 })).message).toBe(
            "cannot go back 1 deployment(s): the host is on generation 1, and the stack recorded no deployment before it",
        );
    });

    it("rollback then deploy: the deploy is the newest step, and the next rollback goes to the generation before it (as nix-env --rollback)", () => {
        const host = deployed(4);
        host.rollback({ kind: "steps", steps: 2 }); // on generation 2
        host.deploy(5); // generation 5
        expect(host.runningGeneration).toBe(5);
        host.rollback({ kind: "steps", steps: 1 });
        expect(host.runningGeneration).toBe(4);
        host.rollback({ kind: "steps", steps: 1 });
        expect(host.runningGeneration).toBe(3);
    });

    it("rollback --clear back to the newest generation, then rollback goes back again (the clear is not a step of its own)", () => {
        const host = deployed(5);
        host.rollback({ kind: "steps", steps: 1 }); // on generation 4
        host.clear(5); // generation 5 again: nix-env reuses it
        expect(host.runningGeneration).toBe(5);
        expect(deploymentSteps(host.outputs!.history).map((entry) => entry.generation)).toEqual([5, 4, 3, 2, 1]);
        host.rollback({ kind: "steps", steps: 1 });
        expect(host.runningGeneration).toBe(4);
        host.clear(5);
        host.rollback({ kind: "steps", steps: 2 });
        expect(host.runningGeneration).toBe(3);
    });

    it("--to-generation then --steps counts from the generation it went to", () => {
        const host = deployed(5);
        host.rollback({ kind: "generation", generation: 2 });
        host.rollback({ kind: "steps", steps: 1 });
        expect(host.runningGeneration).toBe(1);
    });

    it("--to-stack-version uses the numbers the records carry, rollbacks included", () => {
        const host = deployed(25); // stack updates 1..25, generation n in update n
        expect(host.outputs!.history[0]!.stackUpdate).toBe(25);
        // 25 updates, more than the old 10-update window: update 1 is still update 1.
        const records = host.outputs!.history;
        // (the record history is bounded to 20: generation 5 is the oldest kept)
        expect(records[records.length - 1]!.generation).toBe(6);
        host.rollback({ kind: "stackVersion", version: 7 });
        expect(host.runningGeneration).toBe(7);
        host.rollback({ kind: "steps", steps: 1 }); // update 27
        expect(host.runningGeneration).toBe(6);
        // The system the host had when update 26 (the rollback to 7) ended.
        host.rollback({ kind: "stackVersion", version: 26 });
        expect(host.runningGeneration).toBe(7);
        host.rollback({ kind: "steps", steps: 1 });
        expect(host.runningGeneration).toBe(6);
    });

    it("each record carries revision, operator, time and stack update; a rollback carries the revision it went back to", () => {
        const host = deployed(3);
        host.rollback({ kind: "steps", steps: 1 });
        const [rollback, latest] = host.outputs!.history;
        expect(latest).toMatchObject({ kind: "deploy", generation: 3, stackUpdate: 3, operator: "alice@laptop", flake: { revision: "rev3", dirty: false } });
        expect(rollback).toMatchObject({ kind: "rollback", generation: 2, stackUpdate: 4, operator: "bob@desk", flake: { revision: "rev2" } });
        expect(rollback!.rollbackTo).toBe(host.outputs!.history[2]!.activatedAt);
        expect(Date.parse(rollback!.activatedAt)).toBeGreaterThan(Date.parse(latest!.activatedAt));
    });
});

describe("the bounded history", () => {
    it("rollbacks do not push deployments out: 20 deployments and 10 rollbacks keep all 20", () => {
        const host = new SimulatedHost();
        for (let v = 1; v <= 20; v++) host.deploy(v);
        for (let i = 0; i < 10; i++) host.rollback({ kind: "steps", steps: 1 });
        expect(host.runningGeneration).toBe(10);
        expect(deploymentSteps(host.outputs!.history)).toHaveLength(20);
        host.rollback({ kind: "generation", generation: 1 });
        expect(host.runningGeneration).toBe(1);
    });
});

describe("malformed rollback arguments", () => {
    it.each([
        [["--steps", "0"], '--steps must be a whole number of at least 1, not "0"'],
        [["--steps=-1"], '--steps must be a whole number of at least 1, not "-1"'],
        [["--steps", "-1"], "Option '--steps' argument is ambiguous"],
        [["--steps", "1.5"], '--steps must be a whole number of at least 1, not "1.5"'],
        [["--steps", "2.0"], '--steps must be a whole number of at least 1, not "2.0"'],
        [["--steps", "1e1"], '--steps must be a whole number of at least 1, not "1e1"'],
        [["--steps", "0x2"], '--steps must be a whole number of at least 1, not "0x2"'],
        [["--steps", " 2"], '--steps must be a whole number of at least 1, not " 2"'],
        [["--steps", ""], '--steps must be a whole number of at least 1, not ""'],
        [["--steps", "abc"], '--steps must be a whole number of at least 1, not "abc"'],
        [["--steps", "1", "--steps", "2"], "--steps is given more than once"],
        [["--to-generation", "0"], '--to-generation must be a whole number of at least 1, not "0"'],
        [["--to-stack-version", "x"], '--to-stack-version must be a whole number of at least 1, not "x"'],
        [["--parallel", "0"], '--parallel must be a whole number of at least 1, not "0"'],
        [["--steps", "2", "--to-generation", "3"], "--steps and --to-generation cannot be combined"],
        [["--steps"], "argument missing"],
    ])("rollback --hosts psi %j is an error naming the flag, before any stack is opened", async (args, message) => {
        const { rollbackCommand } = await import("../../../src/cli/rollback");
        const error = await rollbackCommand(["--hosts", "psi", ...args]).then(
            () => undefined,
            (caught: unknown) => caught,
        );
        expect(isFleetError(error)).toBe(true);
        expect((error as FleetError).message).toContain(message);
        expect((error as FleetError).phase).toBe("select");
    });
});

describe("attacks on the history", () => {
    it("25 updates, records from before they carried numbers: --to-stack-version 1 is update 1's system, not the 16th's", async () => {
        const { stackVersionTarget } = await import("../../../src/cli/rollback");
        const { FakeHistory, during } = await import("../helpers/fakeHistory");
        const fake = new FakeHistory({ versions: false }).add(25);
        // psi was deployed in updates 1, 16 and 25 (generations 1, 2, 3); the records carry no numbers.
        const legacy = {
            history: [3, 2, 1].map((generation, i) => ({
                generation,
                storePath: system(generation),
                action: "switch",
                activatedAt: during([25, 16, 1][i]!),
            })),
        } as unknown as HostOutputs;
        const { target, updates } = await stackVersionTarget(fake, 1);
        expect(chooseDeployment("psi", legacy, target, updates).entry.generation).toBe(1);
        const at16 = await stackVersionTarget(fake, 16);
        expect(chooseDeployment("psi", legacy, at16.target, at16.updates).entry.generation).toBe(2);
        // more updates later: the same answers
        fake.add(10);
        const again = await stackVersionTarget(fake, 1);
        expect(chooseDeployment("psi", legacy, again.target, again.updates).entry.generation).toBe(1);
    });

    it("--to-stack-version of an update that does not exist says the range", async () => {
        const { stackVersionTarget } = await import("../../../src/cli/rollback");
        const { FakeHistory } = await import("../helpers/fakeHistory");
        const error = await stackVersionTarget(new FakeHistory({ versions: false }).add(25), 26).catch((caught: unknown) => caught);
        expect((error as FleetError).message).toBe("stack version 26 does not exist: this stack's updates are numbered 1 to 25");
    });

    it("a rollback whose target aged out of the history: --steps says so and points to --to-generation", () => {
        const history = [
            { generation: 2, storePath: system(2), action: "switch", activatedAt: "2026-03-02T00:00:00.000Z", kind: "rollback", rollbackTo: "2026-01-01T00:00:00.000Z" },
            { generation: 5, storePath: system(5), action: "switch", activatedAt: "2026-03-01T00:00:00.000Z", kind: "deploy" },
        ];
        const error = thrown(() => chooseDeployment("psi", { history } as unknown as HostOutputs, { kind: "steps", steps: 1 }));
        expect(error.message).toMatch(/no longer in its recorded history/);
        expect(error.hint).toMatch(/--to-generation N/);
    });

    it("a rollback to the system the host already runs is recorded once, not as a new step", () => {
        const host = new SimulatedHost();
        host.deploy(1);
        host.deploy(2);
        host.rollback({ kind: "generation", generation: 2 });
        expect(host.outputs!.history.map((entry) => [entry.generation, entry.kind])).toEqual([
            [2, "deploy"],
            [1, "deploy"],
        ]);
        host.rollback({ kind: "steps", steps: 1 });
        expect(host.runningGeneration).toBe(1);
    });
});
