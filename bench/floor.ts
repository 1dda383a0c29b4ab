// The floor of P1: what any Pulumi provider costs for the same resources on the same toolchain.
// A project whose program registers one resource per host of the fleet's stack, with the inputs
// and outputs the stack recorded for that Host, served by a provider that does nothing (check
// returns the inputs, diff says "no change", both at once). Its program takes the same shortcuts
// as nixos-fleet's (the SDK's resource module, not its index; one-frame stack traces while it
// registers; none of the SDK's per-resource debug messages sent to the engine), so the difference
// between the two is what nixos-fleet itself does per host: reading hosts/, evaluating, checking
// inputs, planning. Not reproduced: Hook resources and secret inputs (the bench's fleets have
// neither; a secret would be registered as its ciphertext object).
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runProcess, type RunResult } from "../src/process/runner";
import { benchTempDir, removeBenchTempDir } from "./tempDirs";

/** One resource of the floor: a Host's name with the inputs and outputs its stack recorded. */
export interface FloorResource {
    name: string;
    inputs: Record<string, unknown>;
    outputs: Record<string, unknown>;
}

/** The floor's program; `root` is nixos-fleet's checkout, whose compiled shortcuts it takes too. */
const program = (root: string): string => `"use strict";
// The floor's program: one resource per recorded Host, its inputs as recorded, every output declared.
const { CustomResource } = require("@pulumi/pulumi/resource");
// nixos-fleet's program sends the engine none of the SDK's per-resource debug messages (src/program/sdkDebugLog.ts): neither does this one.
require(${JSON.stringify(join(root, "dist", "src", "program", "sdkDebugLog.js"))}).dropSdkProgressDebug(require("@pulumi/pulumi/log"));
const resources = require("./resources.json");
// P2's floor: the resource FLOOR_CHANGE names gets the input round FLOOR_ROUND (its diff says it changed).
const change = process.env.FLOOR_CHANGE;
const round = process.env.FLOOR_ROUND;
module.exports = async () => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 1;
    try {
        for (const { name, inputs, outputs } of resources) {
            const props = { ...inputs, ...(name === change ? { floorRound: round } : {}) };
            for (const key of Object.keys(outputs)) if (!(key in props)) props[key] = undefined;
            new CustomResource("floor:index:Thing", name, props);
        }
    } finally {
        Error.stackTraceLimit = limit;
    }
};
`;

const PROVIDER = `#!/usr/bin/env node
"use strict";
// The floor's provider: answers at once and does nothing; create and update return the outputs
// recorded for the Host. A resource changes only when its floorRound input does (P2's floor).
const provider = require("@pulumi/pulumi/provider");
const resources = require("../resources.json");
const outputs = new Map(resources.map((r) => [r.name, r.outputs]));
const nameOf = (urn) => urn.slice(urn.lastIndexOf("::") + 2);
provider.main({
    version: "0.0.1",
    async check(_urn, _olds, news) { return { inputs: news }; },
    async diff(_id, _urn, olds, news) { return { changes: olds.floorRound !== news.floorRound }; },
    async create(urn, inputs) { return { id: nameOf(urn), outs: { ...outputs.get(nameOf(urn)), ...inputs } }; },
    async update(_id, urn, _olds, news) { return { outs: { ...outputs.get(nameOf(urn)), ...news } }; },
    async delete() {},
}, process.argv.slice(2));
`;

export class FloorProgram {
    private constructor(readonly dir: string, private readonly env: Record<string, string>) {}

    /** A floor project for these resources, deployed once (untimed): its previews are no-ops, as P1's are. */
    static async create(root: string, env: Record<string, string>, resources: readonly FloorResource[]): Promise<FloorProgram> {
        if (resources.length === 0) throw new Error("floor: no resources (the fleet's stack recorded no Host)");
        const dir = benchTempDir("nf-bench-floor-");
        const project = join(dir, "project");
        mkdirSync(join(dir, "state"));
        mkdirSync(join(project, "bin"), { recursive: true });
        writeFileSync(
            join(project, "Pulumi.yaml"),
            "name: bench-floor\nmain: index.js\nruntime:\n  name: nodejs\n  options:\n    typescript: false\nplugins:\n  providers:\n    - name: floor\n      path: ./bin\n",
        );
        writeFileSync(join(project, "package.json"), JSON.stringify({ name: "bench-floor", main: "index.js" }));
        writeFileSync(join(project, "index.js"), program(root));
        writeFileSync(join(project, "resources.json"), JSON.stringify(resources));
        writeFileSync(join(project, "bin", "pulumi-resource-floor"), PROVIDER);
        chmodSync(join(project, "bin", "pulumi-resource-floor"), 0o755);
        symlinkSync(join(root, "node_modules"), join(project, "node_modules"));
        const floor = new FloorProgram(dir, { ...env, PULUMI_BACKEND_URL: `file://${join(dir, "state")}` });
        try {
            await floor.pulumiChecked(["stack", "init", "bench"]);
            await floor.pulumiChecked(["up", "--yes", "--skip-preview", "--non-interactive", "-s", "bench"]);
        } catch (error) {
            // The caller gets no FloorProgram to dispose of: its directory goes here.
            floor.dispose();
            throw error;
        }
        return floor;
    }

    private round = 0;

    private async pulumi(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
        return runProcess(["pulumi", ...args], { cwd: join(this.dir, "project"), env: { ...this.env, ...env, PULUMI_CONFIG_PASSPHRASE_FILE: undefined }, timeoutMs: 300_000 });
    }

    private async pulumiChecked(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
        const result = await this.pulumi(args, env);
        if (result.code !== 0) throw new Error(`floor program: pulumi ${args.join(" ")} failed:\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`);
        return result;
    }

    /** A no-op preview: fails when it plans a change (it would not be the floor of a no-op preview). */
    async preview(): Promise<void> {
        const result = await this.pulumiChecked(["preview", "--non-interactive", "-s", "bench"]);
        if (/to (create|update|replace|delete)/.test(result.stdout)) throw new Error(`floor program: the preview is not a no-op:\n${result.stdout.slice(-3000)}`);
    }

    /**
     * P2's floor: `pulumi up --yes --skip-preview --target` of one resource whose input changed,
     * the engine run `npm run deploy -- --hosts h --yes` makes (the Automation API's `up`); the
     * others are registered and left as they are.
     */
    async upOne(name: string): Promise<void> {
        this.round += 1;
        const urn = `urn:pulumi:bench::bench-floor::floor:index:Thing::${name}`;
        const result = await this.pulumiChecked(["up", "--yes", "--skip-preview", "--non-interactive", "-s", "bench", "--target", urn], { FLOOR_CHANGE: name, FLOOR_ROUND: String(this.round) });
        if (!/1 updated/.test(result.stdout)) throw new Error(`floor program: the targeted up did not update ${name}:\n${result.stdout.slice(-3000)}`);
    }

    dispose(): void {
        removeBenchTempDir(this.dir);
    }
}

/** The Hosts a `pulumi stack export` recorded, as the floor's resources (name from the URN). */
export function floorResourcesOf(exported: unknown): FloorResource[] {
    const resources = (exported as { deployment?: { resources?: unknown[] } }).deployment?.resources ?? [];
    return resources.flatMap((resource) => {
        const r = resource as { type?: string; urn?: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown> };
        if (r.type !== "nixos:index:Host" || !r.urn) return [];
        return [{ name: r.urn.slice(r.urn.lastIndexOf("::") + 2), inputs: r.inputs ?? {}, outputs: r.outputs ?? {} }];
    });
}
