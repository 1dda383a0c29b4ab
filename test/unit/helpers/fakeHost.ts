// A simulated NixOS host behind a FakeRunner: it answers the remote commands the deploy phases
// send (state read, nix-env profile changes, switch-to-configuration, store validity) by changing
// its own little state, so tests can check the end state as well as the exact commands.
import { SYSTEM_PROFILE } from "../../../src/deploy/hostState";
import type { ClosurePath } from "../../../src/nix/closure";
import { type FakeRunner, type RecordedCall, type Reply, local, remote, remoteProgram } from "./fakeRunner";

export type Action = "switch" | "boot" | "test" | "dry-activate";

export interface FakeHostState {
    /** generation number → store path */
    generations: Map<number, string>;
    profileGeneration?: number;
    current?: string;
    booted?: string;
    /** What the boot loader starts next (switch/boot of a system set it). */
    bootDefault?: string;
    /** nixos-version of each system store path. */
    versions: Map<string, string>;
    store: Set<string>;
}

export class FakeHost {
    readonly state: FakeHostState;
    /** switch-to-configuration of these store paths fails (exit 1). */
    readonly failingSystems = new Set<string>();
    /** Each switch-to-configuration run, as "<path> <action>". */
    readonly activations: string[] = [];

    constructor(initial: Partial<FakeHostState> = {}) {
        this.state = {
            generations: new Map(),
            versions: new Map(),
            store: new Set(),
            ...initial,
        };
    }

    /** A host that has run generations 1..n of `systems` (the last one current and booted). */
    static withGenerations(...systems: string[]): FakeHost {
        const host = new FakeHost();
        systems.forEach((system, i) => host.state.generations.set(i + 1, system));
        const last = systems[systems.length - 1];
        if (last !== undefined) {
            host.state.profileGeneration = systems.length;
            host.state.current = last;
            host.state.booted = last;
            host.state.bootDefault = last;
        }
        for (const system of systems) host.state.store.add(system);
        return host;
    }

    get profileStorePath(): string | undefined {
        const generation = this.state.profileGeneration;
        return generation === undefined ? undefined : this.state.generations.get(generation);
    }

    /** The output of hostState's READ_STATE_SCRIPT on this host. */
    stateOutput(): string {
        const generation = this.state.profileGeneration;
        return [
            `profile=${generation === undefined ? "" : `system-${generation}-link`}`,
            `profilePath=${this.profileStorePath ?? ""}`,
            `current=${this.state.current ?? ""}`,
            `booted=${this.state.booted ?? ""}`,
            `version=${(this.state.current && this.state.versions.get(this.state.current)) ?? ""}`,
            "",
        ].join("\n");
    }

    private switchTo(path: string, action: Action): Reply {
        this.activations.push(`${path} ${action}`);
        if (!this.state.store.has(path)) return { code: 127, stderr: `sh: ${path}/bin/switch-to-configuration: not found\n` };
        if (this.failingSystems.has(path)) {
            // Like the real script: the boot loader is installed first, then activation fails.
            if (action === "switch" || action === "boot") this.state.bootDefault = path;
            return { code: 1, stdout: "activating the configuration...\n", stderr: "error: the unit foo.service failed to start\n" };
        }
        if (action === "switch" || action === "boot") this.state.bootDefault = path;
        if (action === "switch" || action === "test") this.state.current = path;
        return { stdout: `${action}: done\n` };
    }

    private nixEnv(words: string[]): Reply {
        if (words[1] !== "-p" || words[2] !== SYSTEM_PROFILE) return { code: 1, stderr: "fake host: unexpected nix-env profile\n" };
        if (words[3] === "--set" && words[4]) {
            if (!this.state.store.has(words[4])) return { code: 1, stderr: `error: path '${words[4]}' is not valid\n` };
            const next = Math.max(0, ...this.state.generations.keys()) + 1;
            this.state.generations.set(next, words[4]);
            this.state.profileGeneration = next;
            return {};
        }
        if (words[3] === "--switch-generation" && words[4]) {
            const generation = Number(words[4]);
            if (!this.state.generations.has(generation)) return { code: 1, stderr: `error: generation ${generation} does not exist\n` };
            this.state.profileGeneration = generation;
            return { stderr: `switching profile from version ? to ${generation}\n` };
        }
        return { code: 1, stderr: "fake host: unexpected nix-env arguments\n" };
    }

    private shell(script: string): Reply {
        if (script.includes("readlink") && script.includes("/run/current-system")) return { stdout: this.stateOutput() };
        if (script === `rm -f ${SYSTEM_PROFILE} ${SYSTEM_PROFILE}-*-link`) {
            this.state.generations.clear();
            this.state.profileGeneration = undefined;
            return {};
        }
        return { code: 1, stderr: `fake host: unexpected script ${script}\n` };
    }

    /** Installs this host's answers into `runner`. */
    attach(runner: FakeRunner): this {
        runner.on(remote("sh", "-c"), (call) => this.shell(call.remoteCommand![2] ?? ""));
        runner.on(remote("nix-env"), (call) => this.nixEnv(call.remoteCommand!));
        runner.on(remoteProgram("/bin/switch-to-configuration"), (call: RecordedCall) => {
            const program = call.remoteCommand![0]!;
            return this.switchTo(program.slice(0, -"/bin/switch-to-configuration".length), call.remoteCommand![1] as Action);
        });
        runner.on(remote("nix-store", "--check-validity", "--print-invalid"), (call) => ({
            stdout: call.remoteCommand!.slice(3).filter((path) => !this.state.store.has(path)).map((path) => `${path}\n`).join(""),
        }));
        return this;
    }
}

/**
 * The local side of a deploy: `nix-store --realise` of known derivations, `nix path-info` of known
 * closures, and `nix copy` that puts the closure into `host`'s store.
 */
export function attachLocalNix(runner: FakeRunner, host: FakeHost, closures: Map<string, ClosurePath[]>): void {
    runner.on(local("nix-store", "--realise"), {});
    runner.on(local("path-info", "--json", "--recursive"), (call) => {
        const closure = closures.get(call.argv[call.argv.length - 1]!);
        if (!closure) return { code: 1, stderr: "error: path is not valid\n" };
        return { stdout: JSON.stringify(closure.map(({ path, narSize }) => ({ path, narSize, references: [] }))) };
    });
    runner.on(local("copy", "--no-check-sigs", "--to"), (call) => {
        const closure = closures.get(call.argv[call.argv.length - 1]!);
        if (!closure) return { code: 1, stderr: "error: path is not valid\n" };
        for (const entry of closure) host.state.store.add(entry.path);
        return {};
    });
}
