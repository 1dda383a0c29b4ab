// Benchmark: nixos-fleet (the real pulumi CLI + provider) against the raw baseline (bench/
// baseline.sh: a plain `nix copy` + `ssh` fan-out) on N sandbox hosts, in the same run.
// Prints ratios (nixos-fleet time / baseline time) and SSH handshakes per host; never asserts.
//   npm run bench -- [hosts=10] [rounds=3] [sizeMiB=0]   (sizeMiB: an extra per-host blob, copy-bound)
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { runProcess, runChecked } from "../src/process/runner";
import { evaluateSystems } from "../src/nix/evaluate";
import { FleetProject, ROOT } from "../test/e2e/helpers/fleetProject";

const hostCount = Number(process.argv[2] ?? 10);
const rounds = Number(process.argv[3] ?? 3);
const sizeMiB = Number(process.argv[4] ?? 0);
const names = Array.from({ length: hostCount }, (_, i) => `bench${i}`);

function median(values: number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
}

async function timeIt(work: () => Promise<unknown>): Promise<number> {
    const started = process.hrtime.bigint();
    await work();
    return Number(process.hrtime.bigint() - started) / 1e6;
}

async function main(): Promise<void> {
    const project = await FleetProject.create({ hosts: names, portBase: 28200 });
    const sshConfig = project.sandbox.layout.sshConfigFile;
    const flake = project.sandbox.flakeRef;
    const logins = async () => (await Promise.all(names.map((name) => project.acceptedLogins(name)))).reduce((sum, n) => sum + n, 0);
    const evaluate = async () =>
        evaluateSystems(names.map((name) => ({ name, flake, attribute: `nixosConfigurations.${name}` })), { runner: runProcess });
    const baseline = async (hosts: string[]) => {
        const systems = await evaluate();
        const pairs = hosts.map((name) => `${name}=${systems.get(name)!.storePath}`);
        // Build first (both sides build locally before copying).
        await runChecked(runProcess, ["nix-store", "--realise", ...hosts.map((name) => systems.get(name)!.drvPath)]);
        await runChecked(runProcess, ["bash", join(ROOT, "bench", "baseline.sh"), sshConfig, "switch", ...pairs]);
    };
    const up = async () => {
        const result = await project.up();
        if (result.code !== 0) throw new Error(result.stdout + result.stderr);
    };
    const rows: { scenario: string; fleetMs: number; baselineMs: number; sshPerHost: number; baselineSshPerHost: number }[] = [];
    try {
        let version = 1;
        const bump = async (hosts: string[]) => {
            version += 1;
            for (const name of hosts) await project.sandbox.set(name, { version, size: sizeMiB });
        };
        if (sizeMiB > 0) for (const name of names) await project.sandbox.set(name, { size: sizeMiB });

        // 1. every host changes (first round is the initial deploy of empty hosts)
        const fleetAll: number[] = [], baseAll: number[] = [], sshAll: number[] = [], baseSshAll: number[] = [];
        for (let round = 0; round < rounds; round++) {
            if (round > 0) await bump(names);
            let before = await logins();
            fleetAll.push(await timeIt(up));
            sshAll.push(((await logins()) - before) / hostCount);
            await bump(names);
            before = await logins();
            baseAll.push(await timeIt(() => baseline(names)));
            baseSshAll.push(((await logins()) - before) / hostCount);
            await up(); // bring the stack in line with what the baseline deployed
        }
        rows.push({ scenario: `all ${hostCount} hosts change`, fleetMs: median(fleetAll), baselineMs: median(baseAll), sshPerHost: median(sshAll), baselineSshPerHost: median(baseSshAll) });

        // 2. one host changes
        const fleetOne: number[] = [], baseOne: number[] = [], sshOne: number[] = [];
        for (let round = 0; round < rounds; round++) {
            await bump([names[0]!]);
            const before = await logins();
            fleetOne.push(await timeIt(up));
            sshOne.push((await logins()) - before);
            await bump([names[0]!]);
            baseOne.push(await timeIt(() => baseline([names[0]!])));
            await up();
        }
        rows.push({ scenario: "one host changes", fleetMs: median(fleetOne), baselineMs: median(baseOne), sshPerHost: median(sshOne), baselineSshPerHost: 2 });

        // 3. nothing changes: preview vs the baseline's only way to know (evaluate everything)
        const fleetNoop: number[] = [], baseNoop: number[] = [], sshNoop: number[] = [];
        for (let round = 0; round < rounds; round++) {
            const before = await logins();
            fleetNoop.push(await timeIt(async () => {
                const result = await project.preview();
                if (result.code !== 0) throw new Error(result.stdout + result.stderr);
            }));
            sshNoop.push(((await logins()) - before) / hostCount);
            baseNoop.push(await timeIt(evaluate));
        }
        rows.push({ scenario: "no-op preview (vs one nix eval)", fleetMs: median(fleetNoop), baselineMs: median(baseNoop), sshPerHost: median(sshNoop), baselineSshPerHost: 0 });
    } finally {
        await project.dispose();
    }

    const lines = [
        `nixos-fleet vs raw nix copy + ssh fan-out, ${hostCount} sandbox hosts${sizeMiB ? ` with ${sizeMiB} MiB per-host paths` : ""}, median of ${rounds} rounds`,
        "scenario                          ratio (fleet/baseline)  ssh handshakes/host (fleet, baseline)",
        ...rows.map((row) =>
            `${row.scenario.padEnd(34)}${(row.fleetMs / row.baselineMs).toFixed(2).padStart(8)}x               ${String(row.sshPerHost).padStart(4)}, ${row.baselineSshPerHost}`,
        ),
        "(ratio < 1: nixos-fleet faster. Absolute times vary by machine; the ratios are the result.)",
    ];
    console.log(lines.join("\n"));
    mkdirSync(join(ROOT, "bench", "results"), { recursive: true });
    writeFileSync(join(ROOT, "bench", "results", "deploy.json"), JSON.stringify({ hostCount, rounds, sizeMiB, rows }, null, 2));
}

main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
});
