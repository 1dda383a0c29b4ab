// Per-host knobs of the toy flake, kept in <flake>/hosts/<name>.json because pure Nix
// evaluation cannot read environment variables.
import * as fs from "node:fs";
import * as path from "node:path";
import { z } from "zod";

const UNIT_NAME = /^[a-z][a-z0-9-]{0,40}$/;
/** hello@2.12: a name without a dash before a digit (so the version reads back), a version starting with a digit. */
const PACKAGE = /^[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*@[0-9][0-9a-z.]{0,20}$/;

/** More would take minutes to build on a small machine; a real closure has 1,000–2,000. */
export const MAX_PATHS = 5000;

export const knobsSchema = z.object({
    /** Configuration version: a new one is a new system (new per-host store paths). */
    version: z.number().int().min(1),
    /** Activation (switch/test) fails after re-pointing /run/current-system. */
    fail: z.boolean(),
    /** Activation installs a wrong authorized key: the deployer loses SSH access. */
    breakSsh: z.boolean(),
    /** MiB of per-host payload in the closure (copy benchmarks). */
    size: z.number().int().min(0),
    /** Seconds switch-to-configuration takes (switch/test), for tests that interrupt a deploy. */
    slow: z.number().int().min(0),
    /** Units (without .service) that fail for real when started: web, or any other name (a unit that only fails). */
    failedUnits: z.array(z.string().regex(UNIT_NAME)),
    /** Extra packages of the system, as name@version: each a derivation named <name>-<version> (package diffs). */
    packages: z.array(z.string().regex(PACKAGE)),
    /**
     * Extra store paths in the closure, like a real NixOS system's 1,000–2,000 (benchmarks): sizes
     * spread as in a real closure (most a few KiB, some hundreds of KiB, one in twenty MiBs); shared
     * by every host at the same version, all new with a new version (a nixpkgs bump).
     */
    paths: z.number().int().min(0).max(MAX_PATHS),
    /**
     * Kernel "version": the system's kernel, initrd and kernel-modules links point at derivations
     * named after it (shared by hosts at the same N); a new N is a change that needs a reboot.
     */
    kernel: z.number().int().min(1),
});
export type Knobs = z.infer<typeof knobsSchema>;
export type KnobName = keyof Knobs;

/** What the flake reads: the knobs plus facts the sandbox provides. */
export interface KnobFile extends Knobs {
    system: string;
    authorizedKeys: string[];
    /** 127.0.0.1 port web.service listens on (given by the sandbox, not a knob). */
    webPort: number;
}

export const DEFAULT_KNOBS: Knobs = { version: 1, fail: false, breakSsh: false, size: 0, slow: 0, failedUnits: [], packages: [], paths: 0, kernel: 1 };

const BOOLEAN_KNOBS: ReadonlySet<string> = new Set(["fail", "breakSsh"]);
const KNOB_NAMES: readonly string[] = Object.keys(DEFAULT_KNOBS);

const LIST_KNOBS: ReadonlySet<string> = new Set(["failedUnits"]);

function parseValue(key: string, raw: string): number | boolean | string[] {
    if (key === "packages") {
        const items = raw.split(",").map((item) => item.trim()).filter(Boolean);
        const bad = items.find((item) => !PACKAGE.test(item));
        if (bad !== undefined) throw new Error(`knob packages takes name@version items like hello@2.12,curl@8.0, not '${bad}'`);
        const names = items.map((item) => item.split("@")[0]);
        const twice = names.find((name, i) => names.indexOf(name) !== i);
        if (twice !== undefined) throw new Error(`knob packages names ${twice} more than once`);
        return items;
    }
    if (LIST_KNOBS.has(key)) {
        const items = raw.split(",").map((item) => item.trim().replace(/\.service$/, "")).filter(Boolean);
        const bad = items.find((item) => !UNIT_NAME.test(item));
        if (bad !== undefined) throw new Error(`knob ${key} takes unit names like web or web,worker, not '${bad}'`);
        return [...new Set(items)];
    }
    if (BOOLEAN_KNOBS.has(key)) {
        if (raw === "true" || raw === "1") return true;
        if (raw === "false" || raw === "0") return false;
        throw new Error(`knob ${key} takes true or false, not '${raw}'`);
    }
    if (!/^\d+$/.test(raw)) throw new Error(`knob ${key} takes a whole number, not '${raw}'`);
    return Number(raw);
}

/** Parses CLI assignments like ["version=2", "fail=true"]. */
export function parseKnobAssignments(assignments: readonly string[]): Partial<Knobs> {
    if (assignments.length === 0) throw new Error(`no knobs given: use key=value with keys ${KNOB_NAMES.join(", ")}`);
    const result: Record<string, number | boolean | string[]> = {};
    for (const assignment of assignments) {
        const match = /^([A-Za-z]+)=(.*)$/.exec(assignment);
        if (!match || !KNOB_NAMES.includes(match[1]!)) {
            throw new Error(`bad knob '${assignment}': use key=value with keys ${KNOB_NAMES.join(", ")}`);
        }
        result[match[1]!] = parseValue(match[1]!, match[2]!);
    }
    return knobsSchema.partial().strict().parse(result);
}

export function readKnobFile(file: string): KnobFile | undefined {
    if (!fs.existsSync(file)) return undefined;
    return JSON.parse(fs.readFileSync(file, "utf8")) as KnobFile;
}

/** Writes atomically: a reader (nix eval) never sees half a file. */
export function writeKnobFile(file: string, content: KnobFile): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(content, null, 2) + "\n");
    fs.renameSync(tmp, file);
}

/** Nix's name for this machine's platform. */
export function nixSystem(): string {
    const arch = process.arch === "arm64" ? "aarch64" : process.arch === "x64" ? "x86_64" : process.arch;
    return `${arch}-linux`;
}
