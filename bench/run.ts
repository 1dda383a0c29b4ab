// `npm run bench`: P1–P6 of issue 12, each as a ratio against a raw baseline measured in the same
// run (or a count / a peak against its limit). Prints the figures, writes bench/results/<time>.json;
// never asserts (a missed target is a figure, not a failure). Options: bench/options.ts.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { runProcess, runChecked } from "../src/process/runner";
import { evaluateSystems } from "../src/nix/evaluate";
import { FleetProject, ROOT } from "../test/e2e/helpers/fleetProject";
import { EmptyProgram } from "./empty";
import { FloorProgram, floorResourcesOf } from "./floor";
import { writeHeavyFlake } from "./heavyFlake";
import { withPeakRss } from "./memory";
import { parseBenchArgs, type BenchOptions } from "./options";
import { figure, median, ratio, summaryLine, type Figure } from "./stats";
import type { BenchResults } from "./chart";

const log = (line: string) => console.error(`[bench] ${line}`);

async function timeIt(work: () => Promise<unknown>): Promise<number> {
    const started = process.hrtime.bigint();
    await work();
    return Number(process.hrtime.bigint() - started) / 1e6;
}

/** Runs each of `rounds` rounds and returns the median time of every named part. */
async function rounds(count: number, round: () => Promise<Record<string, number>>): Promise<Record<string, number>> {
    const samples: Record<string, number[]> = {};
    for (let i = 0; i < count; i++) {
        for (const [part, ms] of Object.entries(await round())) (samples[part] ??= []).push(ms);
    }
    return Object.fromEntries(Object.entries(samples).map(([part, values]) => [part, Math.round(median(values))]));
}

function checked(what: string) {
    return (result: { code: number | null; stdout: string; stderr: string }) => {
        if (result.code !== 0) throw new Error(`${what} failed:\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`);
    };
}

class Fleet {
    private version = 1;
    readonly evaluations = new Map<string, number>();
    readonly handshakes: number[] = [];

    constructor(readonly project: FleetProject, readonly names: string[]) {}

    stackConfig(hosts: string[]): void {
        this.project.writeStackConfig({ hosts, defaults: { sshConfigFile: this.project.sandbox.layout.sshConfigFile } });
    }

    /** Gives the hosts a new configuration version (and `paths` extra store paths). */
    async bump(hosts: string[], paths?: number): Promise<void> {
        this.version += 1;
        for (const name of hosts) await this.project.sandbox.set(name, { version: this.version, ...(paths === undefined ? {} : { paths }) });
    }

    /**
     * Between rounds (untimed): removes the hosts' systems older than the last two, then collects
     * their stores' garbage. Realistic closures (`--paths 1500`: ~0.5 GB a host and version, two
     * versions a round on each of 20 hosts) would otherwise fill the disk over the rounds. The
     * booted system is made a GC root first, as NixOS makes it.
     */
    async collectGarbage(hosts: string[]): Promise<void> {
        const script = [
            "[ -e /run/booted-system ] && ln -sfn /run/booted-system /nix/var/nix/gcroots/booted-system",
            "nix-env -p /nix/var/nix/profiles/system --delete-generations +2 >/dev/null && nix-store --gc >/dev/null",
        ].join("\n");
        await Promise.all(hosts.map(async (name) => checked(`garbage collection on ${name}`)(await this.project.sandbox.exec(name, ["sh", "-c", script], { timeoutMs: 600_000 }))));
    }

    async up(): Promise<void> {
        checked("pulumi up")(await this.project.up());
    }

    /** The floor of P1 for the stack as deployed: its Hosts' recorded inputs and outputs, a provider that does nothing. */
    async floor(env: Record<string, string>): Promise<FloorProgram> {
        const exported = await this.project.pulumi(["stack", "export", "-s", this.project.stack]);
        checked("pulumi stack export")(exported);
        return FloorProgram.create(ROOT, env, floorResourcesOf(JSON.parse(exported.stdout)));
    }

    /**
     * A no-op preview, run as the empty and floor programs' previews are (no --diff); fails when it
     * plans any change (the figure would not be P1's).
     */
    async noOpPreview(): Promise<void> {
        const result = await this.project.pulumi(["preview", "--non-interactive", "-s", this.project.stack]);
        checked("pulumi preview")(result);
        if (/to (create|update|replace|delete)/.test(result.stdout)) throw new Error(`P1: the preview is not a no-op:\n${result.stdout.slice(-3000)}`);
    }

    /** `npm run deploy -- --hosts … --yes`, or every host of the stack without `hosts`. */
    async deployCli(hosts?: string[]): Promise<void> {
        const selection = hosts ? ["--hosts", hosts.join(",")] : [];
        const result = await runProcess(["bash", "scripts/cli", "deploy", ...selection, "--stack", this.project.stack, "--yes"], {
            cwd: this.project.projectDir,
            env: { ...this.project.env(), PULUMI_CONFIG_PASSPHRASE_FILE: undefined },
            timeoutMs: 600_000,
        });
        checked(`npm run deploy -- ${selection.join(" ")}`.trim())(result);
    }

    async logins(hosts: string[]): Promise<number> {
        return (await Promise.all(hosts.map((name) => this.project.acceptedLogins(name)))).reduce((sum, n) => sum + n, 0);
    }

    /** Counts handshakes per host of one deploy of `hosts` (P4). */
    async counted(hosts: string[], work: () => Promise<void>): Promise<number> {
        const before = await this.logins(hosts);
        const ms = await timeIt(work);
        this.handshakes.push(((await this.logins(hosts)) - before) / hosts.length);
        return ms;
    }

    async evaluate(hosts: string[]) {
        const flake = this.project.sandbox.flakeRef;
        return evaluateSystems(hosts.map((name) => ({ name, flake, attribute: `nixosConfigurations.${name}` })), { runner: runProcess });
    }

    /**
     * The raw side: evaluate, build locally, then bench/baseline.sh (nix copy + ssh switch per host,
     * in parallel). timeEvaluation false: only the copy and activation are timed.
     */
    async raw(hosts: string[], options: { timeEvaluation: boolean }): Promise<number> {
        const prepare = async () => {
            const systems = await this.evaluate(hosts);
            await runChecked(runProcess, ["nix-store", "--realise", ...hosts.map((name) => systems.get(name)!.drvPath)]);
            return systems;
        };
        const fanOut = (systems: Map<string, { storePath: string }>) =>
            runChecked(runProcess, [
                "bash", join(ROOT, "bench", "baseline.sh"), this.project.sandbox.layout.sshConfigFile, "switch",
                ...hosts.map((name) => `${name}=${systems.get(name)!.storePath}`),
            ]);
        if (options.timeEvaluation) return timeIt(async () => fanOut(await prepare()));
        const systems = await prepare();
        return timeIt(() => fanOut(systems));
    }
}

async function fleetScenarios(options: BenchOptions, empty: EmptyProgram, figures: Figure[]): Promise<void> {
    const names = Array.from({ length: options.hosts }, (_, i) => `bench${i}`);
    log(`starting ${names.length} sandbox hosts (ports from ${options.portBase})`);
    // Ctrl-C from the first host's start on stops the hosts started so far.
    const project = await FleetProject.create({ hosts: names, portBase: options.portBase, beforeStart: stopOnSignal });
    log(`fleet in ${project.dir} (if the bench dies: npm run sandbox -- destroy with SANDBOX_DIR=${project.sandbox.dir})`);
    const fleet = new Fleet(project, names);
    try {
        const want = (id: string) => options.only.includes(id as never);
        if (want("P1")) {
            for (const size of [3, options.hosts]) {
                const hosts = names.slice(0, size);
                fleet.stackConfig(hosts);
                log(`P1: deploying ${size} hosts, then ${options.rounds} no-op previews`);
                await fleet.up();
                await fleet.noOpPreview(); // warms the evaluation cache, as any earlier run would have
                const floor = await fleet.floor(empty.env);
                let t: Record<string, number>;
                try {
                    await floor.preview(); // as warm as the fleet's
                    t = await rounds(options.rounds, async () => ({
                        preview: await timeIt(() => fleet.noOpPreview()),
                        emptyPreview: await timeIt(() => empty.preview()),
                        nixEval: await timeIt(() => fleet.evaluate(hosts)),
                        floorPreview: await timeIt(() => floor.preview()),
                    }));
                } finally {
                    floor.dispose();
                }
                const baseline = t.emptyPreview! + t.nixEval!;
                figures.push(figure({
                    id: "P1", label: "no-op pulumi preview", size: `${size} hosts`, unit: "x", target: 1.3, timings: t,
                    value: ratio(t.preview!, baseline),
                    note: `baseline: empty-program preview + one nix eval of the same hosts (uncached); ${ratio(t.preview!, t.floorPreview!).toFixed(2)}× the floor (P1 floor)`,
                }));
                figures.push(figure({
                    id: "P1 floor", label: "do-nothing provider, same Hosts", size: `${size} hosts`, unit: "x", target: 1.3, timings: t,
                    value: ratio(t.floorPreview!, baseline),
                    note: "the no-op preview of the Hosts' recorded inputs and outputs, served by a provider whose check and diff answer at once (bench/floor.ts), against P1's baseline: what any Pulumi provider costs here",
                }));
            }
        }
        fleet.stackConfig(names);
        log(`deploying all ${names.length} hosts`);
        await fleet.up();
        if (want("P2")) {
            const host = names[names.length - 1]!;
            log(`P2: ${options.rounds} rounds of deploy --hosts ${host}`);
            const floor = await fleet.floor(empty.env);
            let t: Record<string, number>;
            try {
                t = await rounds(options.rounds, async () => {
                    await fleet.bump([host]);
                    const deploy = await fleet.counted([host], () => fleet.deployCli([host]));
                    await fleet.bump([host]);
                    const emptyUp = await timeIt(() => empty.up());
                    const copyActivate = await fleet.raw([host], { timeEvaluation: false });
                    await fleet.deployCli([host]); // the stack in line with the host again (untimed)
                    const floorUp = await timeIt(() => floor.upOne(host));
                    const emptyUpSkipPreview = await timeIt(() => empty.up({ skipPreview: true }));
                    return { deploy, emptyUp, copyActivate, floorUp, emptyUpSkipPreview };
                });
            } finally {
                floor.dispose();
            }
            const baseline = t.emptyUp! + t.copyActivate!;
            const floorTime = t.floorUp! + t.copyActivate!;
            figures.push(figure({
                id: "P2", label: "deploy --hosts (1 changed)", size: `1 of ${names.length} hosts`, unit: "x", target: 1.3, timings: t,
                value: ratio(t.deploy!, baseline),
                note:
                    "baseline: empty-program pulumi up (with its preview, as the issue names it) + raw nix copy + activation of the host (its evaluation and build untimed); " +
                    `${ratio(t.deploy!, t.emptyUpSkipPreview! + t.copyActivate!).toFixed(2)}× with the empty program's up run as the deploy runs its own (--skip-preview); ` +
                    `${ratio(t.deploy!, floorTime).toFixed(2)}× the floor (P2 floor)`,
            }));
            figures.push(figure({
                id: "P2 floor", label: "do-nothing provider, up --target 1", size: `1 of ${names.length} hosts`, unit: "x", target: 1.3, timings: t,
                value: ratio(floorTime, baseline),
                note: "pulumi up --yes --skip-preview --target (the engine run of deploy --hosts h --yes) of one changed resource among the Hosts' recorded ones, served by a provider that does nothing (bench/floor.ts), + the same raw copy and activation, against P2's baseline",
            }));
        }
        if (want("P3") || (want("P4") && !want("P2"))) {
            const changed = names.slice(0, want("P3") ? options.changed : 1);
            const paths = want("P3") ? options.paths : 0;
            log(want("P3")
                ? `P3: ${options.rounds} rounds of ${changed.length} hosts changed, paths=${paths}`
                : `P4: one deploy of 1 changed host to count its SSH logins (neither P2 nor P3 was asked; P3 is not measured)`);
            const t = await rounds(want("P3") ? options.rounds : 1, async () => {
                await fleet.bump(changed, paths);
                // The operator's command: every host of the stack, those changed deploy (at once).
                const up = await fleet.counted(changed, () => fleet.deployCli());
                await fleet.bump(changed, paths);
                const fanOut = await fleet.raw(changed, { timeEvaluation: true });
                await fleet.up(); // the stack in line with the hosts again (untimed)
                if (paths > 0) await fleet.collectGarbage(changed);
                return { up, fanOut };
            });
            if (want("P3")) {
                figures.push(figure({
                    id: "P3", label: `${changed.length} hosts changed, ${paths} extra paths each`, size: `${changed.length} of ${names.length} hosts`,
                    unit: "x", target: 1.2, timings: t, value: ratio(t.up!, t.fanOut!),
                    note: "npm run deploy -- --yes (every host of the stack) vs evaluation + local build + parallel nix copy/ssh switch (bench/baseline.sh)",
                }));
            }
        }
        if (want("P4")) {
            figures.push(figure({
                id: "P4", label: "SSH handshakes per deployed host", size: `${fleet.handshakes.length} deploy${fleet.handshakes.length === 1 ? "" : "s"}`, unit: "per host", target: 2,
                value: median(fleet.handshakes), note: `each deploy's count: ${fleet.handshakes.join(", ")}; target: 1 + the confirmation login`,
            }));
        }
    } finally {
        log("stopping the sandbox hosts");
        await project.dispose();
    }
}

/** Set on SIGINT/SIGTERM: the run reports and records nothing (what it measured is cut short). */
let interrupted = false;

/** SIGINT/SIGTERM (Ctrl-C, a timeout) stop the sandbox hosts before the bench exits. */
function stopOnSignal(project: FleetProject): void {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
        process.once(signal, () => {
            interrupted = true;
            log(`${signal}: stopping the sandbox hosts`);
            void project.dispose().finally(() => process.exit(130));
        });
    }
}

async function evaluationScenario(options: BenchOptions, figures: Figure[]): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "nf-bench-heavy-"));
    try {
        const names = Array.from({ length: options.hosts }, (_, i) => `heavy${i}`);
        const flake = writeHeavyFlake(dir, names, 4_000_000);
        const evaluate = (hosts: string[]) =>
            evaluateSystems(hosts.map((name) => ({ name, flake, attribute: `nixosConfigurations.${name}` })), { runner: runProcess });
        await evaluate(names.slice(0, 1)); // the flake copied into the store once
        log(`P5: evaluating 1 and ${names.length} hosts sharing a heavy module`);
        const t = await rounds(options.rounds, async () => ({
            one: await timeIt(() => evaluate(names.slice(0, 1))),
            all: await timeIt(() => evaluate(names)),
        }));
        figures.push(figure({
            id: "P5", label: "evaluation, hosts sharing a heavy module", size: `${names.length} vs 1 hosts`, unit: "x", target: 3, timings: t,
            value: ratio(t.all!, t.one!), note: "the program's evaluation (evaluateSystems, one nix eval per flake), without the cache",
        }));
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

async function memoryScenario(options: BenchOptions, figures: Figure[]): Promise<void> {
    const names = Array.from({ length: options.bigHosts }, (_, i) => `big${i}`);
    log(`P6: preview of ${names.length} new hosts (configurations only, no containers)`);
    const project = await FleetProject.create({ hosts: names, portBase: options.portBase, start: false });
    try {
        let previewMs = 0;
        const { peakBytes } = await withPeakRss(async () => {
            previewMs = await timeIt(async () => checked("200-host pulumi preview")(await project.preview()));
        });
        figures.push(figure({
            id: "P6", label: "preview peak memory (pulumi + node)", size: `${names.length} hosts`, unit: "MiB", target: 1024,
            value: peakBytes / 2 ** 20, timings: { preview: Math.round(previewMs) },
            note: "sum of the resident sets of the preview's process tree, polled every 100 ms",
        }));
    } finally {
        await project.dispose();
    }
}

async function main(): Promise<void> {
    const options = parseBenchArgs(process.argv.slice(2));
    const figures: Figure[] = [];
    const env = new FleetProjectEnv().env;
    const empty = await EmptyProgram.create(ROOT, env);
    let failure: unknown;
    try {
        if (options.only.some((id) => ["P1", "P2", "P3", "P4"].includes(id))) await fleetScenarios(options, empty, figures);
        if (options.only.includes("P5")) await evaluationScenario(options, figures);
        if (options.only.includes("P6")) await memoryScenario(options, figures);
    } catch (error) {
        failure = error;
    } finally {
        empty.dispose();
    }
    // The signal's handler stops the hosts and exits; the scenarios' errors are its consequence.
    if (interrupted) return;
    const results: BenchResults = {
        date: new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC",
        machine: `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB`,
        options: { ...options },
        figures,
    };
    console.log(figures.map(summaryLine).join("\n"));
    console.log("(ratios: nixos-fleet time / the same run's baseline; absolute times vary by machine, see the JSON)");
    const dir = join(ROOT, "bench", "results");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${new Date().toISOString().slice(0, 19).replace(/:/g, "-")}.json`);
    writeFileSync(file, JSON.stringify(results, null, 2) + "\n");
    console.log(`results: ${file}`);
    if (failure !== undefined) throw failure;
}

/** The pulumi environment the e2e projects use (tools, offline settings, a test passphrase). */
class FleetProjectEnv {
    readonly env: Record<string, string> = {
        PATH: `${join(ROOT, ".tools", "bin")}:${process.env.PATH ?? ""}`,
        PULUMI_HOME: join(ROOT, ".tools", "pulumi-home"),
        PULUMI_CONFIG_PASSPHRASE: "bench-only",
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
    };
}

main().catch((error: unknown) => {
    if (interrupted) return;
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
});
