// The operations guide (docs/operations.ko.md and its English edition) is tested, not just read:
// every `npm run …` command in its fenced code blocks is extracted, (a) both editions must contain
// the same commands, (b) every option must be one the command accepts (its --help), and (c) the
// guide's deploy → verify → rollback sequence is run, command by command in the guide's order, on
// sandbox hosts psi, rho and tau, with only `--stack <test stack>` and `--yes` added.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runProcess, type RunResult } from "../../src/process/runner";
import { FleetProject, ROOT } from "./helpers/fleetProject";

const GUIDES = ["docs/operations.ko.md", "docs/operations.en.md"];
const OPERATOR_COMMANDS = ["deploy", "rollback", "generations", "exec", "build"];

/** Every line starting with `npm run` inside a fenced code block (also fences indented in lists). */
export function guideCommands(markdown: string): string[] {
    const commands: string[] = [];
    let fence: string | undefined;
    for (const raw of markdown.split("\n")) {
        const line = raw.trim();
        const marker = /^(```+|~~~+)/.exec(line)?.[1];
        if (marker && (fence === undefined || marker.startsWith(fence))) {
            fence = fence === undefined ? marker : undefined;
            continue;
        }
        if (fence !== undefined && /^npm run /.test(line)) commands.push(line.replace(/\s+/g, " "));
    }
    return commands;
}

interface ParsedCommand {
    line: string;
    script: string;
    args: string[];
}

function parseCommand(line: string): ParsedCommand {
    const words = line.split(" ");
    expect(words.slice(0, 2), line).toEqual(["npm", "run"]);
    const script = words[2]!;
    const rest = words.slice(3);
    if (rest.length > 0) expect(rest[0], `${line}: arguments go after --`).toBe("--");
    return { line, script, args: rest.slice(1) };
}

/** The command's own options: for exec, only those before the `--` that starts the remote command. */
const ownArgs = (args: string[]): string[] => (args.includes("--") ? args.slice(0, args.indexOf("--")) : args);
const optionNames = (args: string[]): string[] => ownArgs(args).filter((arg) => arg.startsWith("-")).map((arg) => arg.split("=")[0]!);

const commandsOf = (file: string) => guideCommands(readFileSync(join(ROOT, file), "utf8"));

describe("the operations guide's commands", () => {
    it("extracts commands from fenced blocks only, including indented fences", () => {
        const sample = "run `npm run deploy -- --nope` inline\n```bash\nnpm run deploy -- --hosts psi\n```\n- item\n\n    ```bash\n    npm run  generations -- --json\n    ```\nnpm run outside\n";
        expect(guideCommands(sample)).toEqual(["npm run deploy -- --hosts psi", "npm run generations -- --json"]);
    });

    it("(a) both editions contain the same commands", () => {
        const [ko, en] = GUIDES.map(commandsOf);
        expect(ko!.length).toBeGreaterThan(10);
        expect(new Set(en)).toEqual(new Set(ko));
        expect(en).toEqual(ko); // and in the same order: the editions have the same structure
        for (const script of OPERATOR_COMMANDS) expect(ko!.some((line) => line.startsWith(`npm run ${script} `)), script).toBe(true);
    });

    it("(b) every command is an npm script and every option one the command accepts", async () => {
        const scripts = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
        const help = new Map<string, string>();
        const helpOf = async (key: string, argv: string[]): Promise<string> => {
            if (!help.has(key)) {
                const result = await runProcess(argv, { cwd: ROOT, timeoutMs: 120_000 });
                expect(result.code, `${argv.join(" ")}: ${result.stderr}`).toBe(0);
                help.set(key, result.stdout);
            }
            return help.get(key)!;
        };
        for (const line of commandsOf(GUIDES[0]!)) {
            const { script, args } = parseCommand(line);
            expect(scripts[script], `${line}: no npm script "${script}"`).toBeDefined();
            let text: string;
            if (OPERATOR_COMMANDS.includes(script)) {
                text = await helpOf(script, ["bash", "scripts/cli", script, "--help"]);
            } else if (script === "pulumi") {
                const subcommand = args[0]!;
                text = await helpOf(`pulumi ${subcommand}`, ["bash", "scripts/pulumi", subcommand, "--help"]);
            } else {
                throw new Error(`${line}: the guide uses an npm script this test does not know how to check`);
            }
            for (const option of optionNames(args)) {
                expect(text, `${line}: ${option} is not an option of ${script}`).toMatch(new RegExp(`(^|[\\s\\[|,])${option}([\\s=\\]|,]|$)`, "m"));
            }
        }
    });
});

// --- (c) the sequence on sandbox hosts ---

let project: FleetProject;

interface JsonGeneration {
    generation: number;
    storePath: string | null;
    running: boolean;
    current: boolean;
    stackVersion: number | null;
}

/**
 * The guide's command as written, run with npm in the project, plus --stack (and --yes to apply).
 * `--silent` only keeps npm's own banner out of stdout, so --json output stays parsable.
 */
async function runGuideCommand(line: string, substitute: Record<string, string> = {}): Promise<RunResult> {
    const { script, args } = parseCommand(line);
    const words = [...args];
    for (const [option, value] of Object.entries(substitute)) {
        const at = words.indexOf(option);
        expect(at, `${line} has no ${option}`).toBeGreaterThanOrEqual(0);
        words[at + 1] = value;
    }
    // The guide's own --stack (e.g. prod) becomes the test stack.
    const stackAt = words.indexOf("--stack");
    if (stackAt >= 0) words.splice(stackAt, 2);
    // Before exec's remote command (after its `--`), which is not ours to change.
    const end = words.includes("--") ? words.indexOf("--") : words.length;
    words.splice(end, 0, "--stack", project.stack);
    const applies = script === "deploy" || script === "rollback" || (script === "pulumi" && words[0] === "refresh");
    if (applies && !words.includes("--preview")) words.push("--yes");
    return runProcess(["npm", "run", "--silent", script, "--", ...words], {
        cwd: project.projectDir,
        env: { ...project.env(), PULUMI_CONFIG_PASSPHRASE_FILE: undefined },
        timeoutMs: 300_000,
    });
}

async function generationsJson(): Promise<Record<string, JsonGeneration[]>> {
    const result = await runGuideCommand("npm run generations -- --json");
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const hosts = JSON.parse(result.stdout) as { host: string; generations: JsonGeneration[] }[];
    return Object.fromEntries(hosts.map((h) => [h.host, h.generations]));
}

const recordedHistory = async (host: string) =>
    (await project.hostStates())[host]!.history as { generation: number | null; storePath: string }[];

beforeAll(async () => {
    project = await FleetProject.create({ hosts: ["psi", "rho", "tau"], portBase: 30200 });
    // rho and tau are compute servers (the guide's `--hosts @compute`).
    project.writeHost("rho", { ...project.defaultHostFile("rho"), tags: ["sandbox", "compute"] });
    project.writeHost("tau", { ...project.defaultHostFile("tau"), tags: ["sandbox", "compute"] });
});

afterAll(async () => {
    await project?.dispose();
});

describe("(c) the guide's deploy, verify and rollback sequence on psi, rho, tau", () => {
    it("runs end to end, each command doing what the guide says", async () => {
        const commands = commandsOf(GUIDES[0]!);
        let index = 0;
        const next = (expected: RegExp): string => {
            const line = commands[index++];
            expect(line, `guide command #${index}`).toMatch(expected);
            return line!;
        };
        const ok = async (line: string, substitute?: Record<string, string>): Promise<string> => {
            const result = await runGuideCommand(line, substitute);
            const output = result.stdout + result.stderr;
            expect(result.code, `${line}\n${output}`).toBe(0);
            return output;
        };

        // Deploy commands: the first example is the single-host deploy itself (run below).
        expect(next(/^npm run deploy -- --hosts psi$/)).toBeTruthy();

        // Plan first: nothing changes.
        let output = await ok(next(/--hosts psi --preview$/));
        expect(output).toMatch(/psi .*planned/);
        expect((await project.hostSystem("psi")).generation).toBeUndefined();

        output = await ok(next(/^npm run deploy -- --hosts psi$/));
        expect(output).toMatch(/^host +generation +system/m);
        expect(output).toMatch(/^psi +- → 1 .*deployed$/m);
        const psi1 = (await project.hostSystem("psi")).current;

        output = await ok(next(/--hosts rho,tau$/));
        expect(output).toMatch(/^rho +- → 1 .*deployed$/m);
        expect(output).toMatch(/^tau +- → 1 .*deployed$/m);

        // An engineer changes rho's configuration; @compute deploys rho and leaves tau (unchanged) and psi alone.
        await project.sandbox.set("rho", { version: 2 });
        const psiLogins = await project.acceptedLogins("psi");
        output = await ok(next(/--hosts @compute$/));
        expect(output).toMatch(/^rho +1 → 2 .*deployed$/m);
        expect(output).toMatch(/^tau +1 → 1 .*unchanged$/m);
        expect(output).not.toMatch(/^psi /m);
        expect(await project.acceptedLogins("psi")).toBe(psiLogins);

        // psi's configuration changes; the guide's `--stack prod` is the test stack here.
        await project.sandbox.set("psi", { version: 2 });
        output = await ok(next(/--hosts psi --stack prod$/));
        expect(output).toMatch(/^psi +1 → 2 .*deployed$/m);
        const psi2 = (await project.hostSystem("psi")).current;
        expect(psi2).not.toBe(psi1);

        // Verification.
        output = await ok(next(/^npm run generations -- --hosts psi$/));
        expect(output).toMatch(/^psi \(stack /m);
        expect(output).toMatch(/^ +2 .*-nixos-system-psi-24\.05\.2-sandbox .*stack update \d+ +\S+ +\S+@\S+ +running, boot$/m);
        const jsonLine = next(/^npm run generations -- --json$/);
        const listed = JSON.parse((await runGuideCommand(jsonLine)).stdout) as { host: string; generations: JsonGeneration[] }[];
        expect(listed.map((h) => [h.host, h.generations.map((g) => g.generation)])).toEqual([
            ["psi", [1, 2]],
            ["rho", [1, 2]],
            ["tau", [1]],
        ]);
        for (const host of listed) {
            expect(host.generations.find((g) => g.running)?.storePath).toBe((await project.hostSystem(host.host)).current);
        }
        output = await ok(next(/^npm run pulumi -- refresh$/));
        expect(output).not.toMatch(/drift/);

        // Rollback: the plan shows the pin and changes nothing.
        output = await ok(next(/^npm run rollback -- --hosts psi --preview$/));
        expect(output).toMatch(/psi is pinned to \/nix\/store\/\S+-nixos-system-psi-24\.05\.1-sandbox/);
        expect((await project.hostSystem("psi")).current).toBe(psi2);
        expect(readFileSync(join(project.projectDir, `Pulumi.${project.stack}.yaml`), "utf8")).not.toMatch(/pins/);

        // Two more deployments of psi (not guide commands), so the guide's `rollback` and then
        // `--steps 2` have somewhere to go: psi deployments 1, 2, 3, 4.
        await project.sandbox.set("psi", { version: 3 });
        expect((await runGuideCommand("npm run deploy -- --hosts psi")).code).toBe(0);
        const psi3 = (await project.hostSystem("psi")).current;
        await project.sandbox.set("psi", { version: 4 });
        expect((await runGuideCommand("npm run deploy -- --hosts psi")).code).toBe(0);
        const psi4 = (await project.hostSystem("psi")).current;

        // Back to the previous deployment (4 → 3).
        const history = await recordedHistory("psi");
        output = await ok(next(/^npm run rollback -- --hosts psi$/));
        expect((await project.hostSystem("psi")).current).toBe(history[1]!.storePath);
        expect((await project.hostSystem("psi")).current).toBe(psi3);
        expect(output).toMatch(/psi is pinned to/); // flagged in the deploy too

        // Two deployments further back, counted from where the rollback went (3 → 1): a rollback
        // is not a step of its own, as with nix-env --rollback.
        output = await ok(next(/^npm run rollback -- --hosts psi --steps 2$/));
        expect((await project.hostSystem("psi")).current).toBe(psi1);
        expect(output).toMatch(/psi is pinned to/);

        // --to-generation N: N taken from `npm run generations`, as the guide says (its 3 is an example).
        let generations = await generationsJson();
        const notRunning = generations.psi!.find((g) => !g.running && g.stackVersion !== null)!;
        await ok(next(/^npm run rollback -- --hosts psi --to-generation \d+$/), { "--to-generation": String(notRunning.generation) });
        expect((await project.hostSystem("psi")).current).toBe(notRunning.storePath);

        // --to-stack-version V: V from `stack update V` of `npm run generations` (its 7 is an example).
        generations = await generationsJson();
        const first = generations.psi!.find((g) => g.generation === 1)!;
        expect(first.stackVersion).not.toBeNull();
        await ok(next(/^npm run rollback -- --hosts psi --to-stack-version \d+$/), { "--to-stack-version": String(first.stackVersion) });
        expect((await project.hostSystem("psi")).current).toBe(psi1);

        // --clear: the configuration again, and the pin is gone.
        output = await ok(next(/^npm run rollback -- --hosts psi --clear$/));
        expect((await project.hostSystem("psi")).current).toBe(psi4);
        expect(readFileSync(join(project.projectDir, `Pulumi.${project.stack}.yaml`), "utf8")).not.toMatch(/pins/);
        const preview = await project.preview();
        expect(preview.stdout + preview.stderr).not.toMatch(/pinned/);

        // Staged rollouts: --batch-size for one run; the batches are said, the run is honest.
        output = await ok(next(/^npm run deploy -- --hosts @compute --batch-size 1$/));
        expect(output).toContain("rollout, batches of 1 host (--batch-size for this run): batch 1: psi; batch 2: rho; batch 3: tau.");
        expect(output).toMatch(/^rho +\S+ → \S+ .*unchanged$/m);
        expect(output).toMatch(/^tau +\S+ → \S+ .*unchanged$/m);

        // exec: the command on the @compute servers only, each line with its server's name.
        const psiBefore = await project.acceptedLogins("psi");
        output = await ok(next(/^npm run exec -- --hosts @compute -- systemctl is-active web$/));
        expect(output).toMatch(/^\[rho\] active$/m);
        expect(output).toMatch(/^\[tau\] active$/m);
        expect(output).toMatch(/^exec: 2 of 2 hosts ok$/m);
        expect(output).not.toMatch(/\[psi\]/);
        expect(await project.acceptedLogins("psi")).toBe(psiBefore);

        // build: psi's next system is built, psi is not contacted and keeps running what it ran.
        await project.sandbox.set("psi", { version: 5 });
        output = await ok(next(/^npm run build -- --hosts psi$/));
        expect(output).toContain(`${await project.evaluatedStorePath("psi")}  `);
        expect(output).toMatch(/^build: 1 of 1 system built; no host was changed$/m);
        // (before hostSystem, which logs in itself)
        expect(await project.acceptedLogins("psi")).toBe(psiBefore);
        expect((await project.hostSystem("psi")).current).toBe(psi4);

        // Every command of the guide was run (or checked) above, in the guide's order.
        expect(commands.slice(index), "guide commands this test does not run yet").toEqual([]);
    }, 900_000);
});
