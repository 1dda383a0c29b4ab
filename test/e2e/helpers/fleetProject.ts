// A throw-away copy of the nixos-fleet project for end-to-end tests: its own stack, file://
// state backend and sandbox fleet, driven through the real `pulumi` CLI. The program, provider
// and node_modules are the checkout's own (symlinked), so the tests exercise the real code.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { stringify } from "yaml";
import { runProcess, type RunResult } from "../../../src/process/runner";
import { SandboxFleet } from "../../../sandbox/fleet";

export const ROOT = resolve(__dirname, "../../..");
const TOOLS_BIN = join(ROOT, ".tools", "bin");

export interface FleetProjectOptions {
    hosts: string[];
    stack?: string;
    /** First sandbox port; each test file uses its own range. */
    portBase: number;
    /** Stack config under the nixos-fleet namespace; default: all hosts, the sandbox ssh_config. */
    config?: Record<string, unknown>;
    /** false: only the hosts' configurations (knob files), no containers (previews of new hosts; benchmarks). */
    start?: boolean;
    /** Called with the project before its hosts start (the bench stops them on Ctrl-C from then on). */
    beforeStart?: (project: FleetProject) => void;
}

export class FleetProject {
    readonly dir: string;
    readonly projectDir: string;
    readonly stateDir: string;
    readonly sandbox: SandboxFleet;
    stack: string;

    private constructor(options: FleetProjectOptions) {
        this.dir = mkdtempSync(join(tmpdir(), "nf-e2e-"));
        this.projectDir = join(this.dir, "project");
        this.stateDir = join(this.dir, "state");
        this.stack = options.stack ?? "e2e";
        this.sandbox = new SandboxFleet({ dir: join(this.dir, "sandbox"), portBase: options.portBase });
        mkdirSync(join(this.projectDir, "hosts"), { recursive: true });
        mkdirSync(this.stateDir, { recursive: true });
        for (const file of ["Pulumi.yaml", "package.json", "tsconfig.json"]) {
            copyFileSync(join(ROOT, file), join(this.projectDir, file));
        }
        // scripts/ too: `npm run deploy|rollback|generations` run scripts/cli from the project directory.
        for (const link of ["index.ts", "program.js", "src", "node_modules", "bin", "scripts"]) {
            symlinkSync(join(ROOT, link), join(this.projectDir, link));
        }
    }

    static async create(options: FleetProjectOptions): Promise<FleetProject> {
        const project = new FleetProject(options);
        options.beforeStart?.(project);
        try {
            await project.setUp(options);
        } catch (error) {
            // The test file never gets the project to dispose of: its hosts and directory go now.
            await project.dispose();
            throw error;
        }
        return project;
    }

    private async setUp(options: FleetProjectOptions): Promise<void> {
        if (options.start === false) {
            for (const name of options.hosts) await this.sandbox.set(name, {});
            mkdirSync(dirname(this.sandbox.layout.sshConfigFile), { recursive: true });
            if (!existsSync(this.sandbox.layout.sshConfigFile)) writeFileSync(this.sandbox.layout.sshConfigFile, "");
        } else {
            await this.sandbox.start(options.hosts);
        }
        for (const name of options.hosts) this.writeHost(name, this.defaultHostFile(name));
        this.writeStackConfig(
            options.config ?? { hosts: options.hosts, defaults: { sshConfigFile: this.sandbox.layout.sshConfigFile } },
        );
        const init = await this.pulumi(["stack", "init", this.stack]);
        if (init.code !== 0) throw new Error(`pulumi stack init failed: ${init.stderr}`);
    }

    /** Creates another stack in the same project (own state file, own config). */
    async initStack(stack: string, settings: Record<string, unknown>): Promise<void> {
        this.writeStackConfig(settings, stack);
        const init = await this.pulumi(["stack", "init", stack]);
        if (init.code !== 0) throw new Error(`pulumi stack init ${stack} failed: ${init.stderr}`);
    }

    writeHostIn(dir: string, name: string, fields: Record<string, unknown> | string): void {
        mkdirSync(join(this.projectDir, dir), { recursive: true });
        writeFileSync(join(this.projectDir, dir, `${name}.yaml`), typeof fields === "string" ? fields : stringify(fields));
    }

    defaultHostFile(name: string): Record<string, unknown> {
        return { address: name, flake: `path:${this.sandbox.flakeDir}`, tags: ["sandbox"] };
    }

    writeHost(name: string, fields: Record<string, unknown>): void {
        writeFileSync(join(this.projectDir, "hosts", `${name}.yaml`), stringify(fields));
    }

    writeHostText(name: string, text: string): void {
        writeFileSync(join(this.projectDir, "hosts", `${name}.yaml`), text);
    }

    writeStackConfig(settings: Record<string, unknown>, stack = this.stack): void {
        const config: Record<string, unknown> = {};
        for (const [key, value] of Object.entries(settings)) config[`nixos-fleet:${key}`] = value;
        const file = join(this.projectDir, `Pulumi.${stack}.yaml`);
        // Keep the salt `stack init` wrote, so the stack's secrets stay readable.
        const salt = existsSync(file) ? /^encryptionsalt: .*$/m.exec(readFileSync(file, "utf8"))?.[0] : undefined;
        writeFileSync(file, stringify({ config }) + (salt ? `${salt}\n` : ""));
    }

    env(): Record<string, string> {
        return {
            PATH: `${TOOLS_BIN}:${process.env.PATH ?? ""}`,
            PULUMI_HOME: join(ROOT, ".tools", "pulumi-home"),
            PULUMI_BACKEND_URL: `file://${this.stateDir}`,
            PULUMI_CONFIG_PASSPHRASE: "e2e-test-only",
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
            PULUMI_NODEJS_TRANSPILE_ONLY: "true",
        };
    }

    /** Runs the real pulumi CLI in the project with the test's stack. */
    async pulumi(args: string[], options: { timeoutMs?: number } = {}): Promise<RunResult> {
        return runProcess(["pulumi", ...args], {
            cwd: this.projectDir,
            env: { ...this.env(), PULUMI_CONFIG_PASSPHRASE_FILE: undefined },
            timeoutMs: options.timeoutMs ?? 300_000,
        });
    }

    /** Runs `npm run <command> -- args` the way scripts/cli does (from the sources), in the project. */
    async cli(command: string, args: string[]): Promise<RunResult> {
        return runProcess(["node", "-r", "ts-node/register/transpile-only", join(ROOT, "src", "cli", "main.ts"), command, ...args], {
            cwd: this.projectDir,
            env: { ...this.env(), TS_NODE_PROJECT: join(ROOT, "tsconfig.json"), PULUMI_CONFIG_PASSPHRASE_FILE: undefined },
            timeoutMs: 300_000,
        });
    }

    async up(extra: string[] = [], stack = this.stack): Promise<RunResult> {
        return this.pulumi(["up", "--yes", "--skip-preview", "--non-interactive", "-s", stack, ...extra]);
    }

    async preview(extra: string[] = [], stack = this.stack): Promise<RunResult> {
        return this.pulumi(["preview", "--non-interactive", "--diff", "-s", stack, ...extra]);
    }

    async previewJson(): Promise<PreviewJson> {
        const result = await this.pulumi(["preview", "--non-interactive", "--json", "-s", this.stack]);
        if (result.code !== 0) throw new Error(`pulumi preview failed:\n${result.stdout}\n${result.stderr}`);
        return JSON.parse(result.stdout) as PreviewJson;
    }

    async refresh(): Promise<RunResult> {
        return this.pulumi(["refresh", "--yes", "--skip-preview", "--non-interactive", "-s", this.stack]);
    }

    /** The recorded outputs of each Host resource in the stack's state. */
    async hostStates(stack = this.stack): Promise<Record<string, Record<string, unknown>>> {
        const result = await this.pulumi(["stack", "export", "-s", stack]);
        if (result.code !== 0) throw new Error(`pulumi stack export failed: ${result.stderr}`);
        const deployment = JSON.parse(result.stdout) as { deployment: { resources?: { type: string; outputs?: Record<string, unknown> }[] } };
        const hosts: Record<string, Record<string, unknown>> = {};
        for (const resource of deployment.deployment.resources ?? []) {
            if (resource.type === "nixos:index:Host" && resource.outputs) hosts[String(resource.outputs.name)] = resource.outputs;
        }
        return hosts;
    }

    /** The host's system as Nix itself evaluates it from the sandbox flake (independent of the program). */
    async evaluatedStorePath(name: string): Promise<string> {
        const result = await runProcess([
            "nix", "--extra-experimental-features", "nix-command flakes", "eval", "--raw",
            `${this.sandbox.flakeRef}#nixosConfigurations.${name}.config.system.build.toplevel.outPath`,
        ]);
        if (result.code !== 0) throw new Error(result.stderr);
        return result.stdout.trim();
    }

    /** SSH logins the host's sshd accepted so far (each is one handshake). */
    async acceptedLogins(name: string): Promise<number> {
        const log = await this.sandbox.sshdLog(name);
        return (log.match(/Accepted publickey/g) ?? []).length;
    }

    /** Runs a command on a host (as root) and returns its trimmed stdout; throws on failure. */
    async onHost(name: string, argv: string[]): Promise<string> {
        const result = await this.sandbox.exec(name, argv);
        if (result.code !== 0) throw new Error(`${argv.join(" ")} on ${name} failed: ${result.stderr}`);
        return result.stdout.trim();
    }

    async hostSystem(name: string): Promise<{ generation: number | undefined; current: string; profile: string }> {
        const out = await this.onHost(name, ["sh", "-c", "readlink /nix/var/nix/profiles/system; readlink -f /nix/var/nix/profiles/system; readlink -f /run/current-system"]);
        const [link = "", profile = "", current = ""] = out.split("\n");
        const match = /system-(\d+)-link/.exec(link);
        return { generation: match ? Number(match[1]) : undefined, profile, current };
    }

    async dispose(): Promise<void> {
        // Hosts still booting (a Ctrl-C while the fleet starts) are waited for, then stopped with the rest.
        await this.sandbox.closeStarts();
        await this.sandbox.destroy().catch(() => undefined);
        rmSync(this.dir, { recursive: true, force: true });
    }
}

export interface PreviewStep {
    op: string;
    urn: string;
    oldState?: { outputs?: Record<string, unknown>; inputs?: Record<string, unknown> };
    newState?: { inputs?: Record<string, unknown> };
    diffReasons?: string[];
}

export interface PreviewJson {
    steps: PreviewStep[];
    changeSummary: Record<string, number>;
    diagnostics?: { message: string; severity: string; urn?: string }[];
}
