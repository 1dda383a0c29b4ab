// `npm run bench` options: which scenarios to run and at what sizes (pure; unit-tested).
export const SCENARIOS = ["P1", "P2", "P3", "P4", "P5", "P6"] as const;
export type ScenarioId = (typeof SCENARIOS)[number];

export interface BenchOptions {
    only: ScenarioId[];
    /** Fleet size for P1 (large case), P2, P3, P5. */
    hosts: number;
    /** Hosts changed in P3 (default 20, or --hosts when fewer). */
    changed: number;
    /** Extra store paths per changed host's system in P3 (the sandbox knob paths=N); 1,500: a real NixOS closure has 1,000–2,000 paths. */
    paths: number;
    /** Hosts of the P6 preview. */
    bigHosts: number;
    rounds: number;
    portBase: number;
}

export const DEFAULT_OPTIONS: BenchOptions = {
    only: [...SCENARIOS],
    hosts: 50,
    changed: 20,
    paths: 1500,
    bigHosts: 200,
    rounds: 3,
    portBase: 19200,
};

export const USAGE = `npm run bench -- [--only P1,P4] [--hosts 50] [--changed 20] [--paths 1500] [--big-hosts 200] [--rounds 3] [--port-base 19200]`;

const NUMERIC: Record<string, keyof Omit<BenchOptions, "only">> = {
    "--hosts": "hosts",
    "--changed": "changed",
    "--paths": "paths",
    "--big-hosts": "bigHosts",
    "--rounds": "rounds",
    "--port-base": "portBase",
};

function wholeNumber(flag: string, raw: string | undefined, min: number): number {
    if (raw === undefined || !/^\d+$/.test(raw) || Number(raw) < min) {
        throw new Error(`${flag} takes a whole number ≥ ${min}, not '${raw ?? ""}' (${USAGE})`);
    }
    return Number(raw);
}

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
    const options: BenchOptions = { ...DEFAULT_OPTIONS, only: [...DEFAULT_OPTIONS.only] };
    const given = new Set<string>();
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i]!;
        const [flag, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
        const value = () => inline ?? argv[++i];
        if (flag === "--only") {
            const raw = value() ?? "";
            const ids = raw.split(",").map((id) => id.trim().toUpperCase()).filter(Boolean);
            const bad = ids.find((id) => !(SCENARIOS as readonly string[]).includes(id));
            if (ids.length === 0 || bad !== undefined) throw new Error(`--only takes scenarios among ${SCENARIOS.join(",")}, not '${bad ?? raw}' (${USAGE})`);
            options.only = SCENARIOS.filter((id) => ids.includes(id));
        } else if (flag in NUMERIC) {
            const key = NUMERIC[flag]!;
            const min = key === "paths" ? 0 : key === "portBase" ? 1024 : 1;
            options[key] = wholeNumber(flag, value(), min);
            given.add(key);
        } else {
            throw new Error(`unknown option '${arg}' (${USAGE})`);
        }
    }
    // Without --changed, P3 changes 20 hosts or all of a smaller fleet.
    if (!given.has("changed")) options.changed = Math.min(options.changed, options.hosts);
    if (options.changed > options.hosts) throw new Error(`--changed ${options.changed} is more than --hosts ${options.hosts}`);
    if (options.only.includes("P1") && options.hosts < 3) throw new Error("P1 compares 3 hosts with --hosts: give --hosts 3 or more");
    return options;
}
