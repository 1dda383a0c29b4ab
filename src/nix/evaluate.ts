// Evaluate phase: every selected host's system store path from ONE `nix eval` per flake, without
// building anything (only .drv files are written), so `pulumi preview` is quick and exact.
import { FleetError, tail } from "../errors";
import type { ProcessRunner } from "../process/runner";
import { resolveFlakeRef } from "../config/paths";
import { NIX_FLAGS, isStorePath } from "./flags";
import { evalCacheKey, lockedContent, pinnedFlakeRef, type CachedSystems, type EvaluationCache } from "./evalCache";

export interface EvaluationTarget {
    name: string;
    flake: string;
    /** Dotted attribute path of the NixOS configuration, e.g. nixosConfigurations.psi. */
    attribute: string;
}

export interface EvaluatedSystem {
    storePath: string;
    drvPath: string;
}

export interface EvaluateOptions {
    runner: ProcessRunner;
    cwd?: string;
    /** Skips flakes whose content (and everything else that matters) is unchanged (evalCache.ts). */
    cache?: EvaluationCache;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_'-]*$/;

function attributeSegments(target: EvaluationTarget): string[] {
    const segments = target.attribute.split(".");
    if (segments.length < 2 || !segments.every((segment) => IDENTIFIER.test(segment))) {
        throw new FleetError({
            phase: "evaluate",
            host: target.name,
            message: `attribute "${target.attribute}" is not a dotted path like nixosConfigurations.${target.name}`,
            hint: "fix the attribute field in the host's file",
        });
    }
    return segments;
}

const nixString = (value: string): string => JSON.stringify(value).replace(/\$\{/g, "\\${");

/** The --apply function: from the flake output `prefix`, each host's toplevel out and drv paths. */
export function applyExpression(hosts: { name: string; rest: string[] }[]): string {
    const fields = hosts.map(({ name, rest }) => {
        const select = ["o", ...rest.map(nixString)].join(".");
        return `${nixString(name)} = let t = ${select}.config.system.build.toplevel; in { out = t.outPath; drv = t.drvPath; };`;
    });
    return `o: { ${fields.join(" ")} }`;
}

interface Group {
    flake: string;
    prefix: string;
    hosts: { name: string; rest: string[] }[];
    /** The locked reference Nix evaluates instead of `flake`, when its metadata names one content (pinnedFlakeRef). */
    pinned?: string;
}

function groupByFlake(targets: EvaluationTarget[]): Group[] {
    const groups = new Map<string, Group>();
    for (const target of targets) {
        const [prefix, ...rest] = attributeSegments(target);
        const key = `${target.flake}#${prefix}`;
        let group = groups.get(key);
        if (!group) {
            group = { flake: target.flake, prefix: prefix!, hosts: [] };
            groups.set(key, group);
        }
        group.hosts.push({ name: target.name, rest });
    }
    return [...groups.values()];
}

async function evalGroup(group: Group, options: EvaluateOptions) {
    return options.runner(
        ["nix", ...NIX_FLAGS, "eval", "--json", `${group.pinned ?? group.flake}#${group.prefix}`, "--apply", applyExpression(group.hosts)],
        { cwd: options.cwd },
    );
}

/** Which hosts of a failed group are at fault: only run on the error path, one eval per host. */
async function blameHosts(group: Group, options: EvaluateOptions): Promise<FleetError[]> {
    const errors: FleetError[] = [];
    for (const host of group.hosts) {
        const result = await evalGroup({ ...group, hosts: [host] }, options);
        if (result.code !== 0) errors.push(evaluationError(host.name, group, result.stderr));
    }
    return errors;
}

/** True when Nix says the configuration itself is missing, not some attribute inside its modules. */
function configurationMissing(group: Group, host: string | undefined, stderr: string): boolean {
    if (/does not provide attribute/.test(stderr)) return true;
    const missing = /attribute '([^']+)' missing/.exec(stderr)?.[1];
    if (missing === undefined) return false;
    const hosts = group.hosts.filter((h) => host === undefined || h.name === host);
    return missing === group.prefix || hosts.some((h) => h.rest.includes(missing));
}

function evaluationError(host: string | undefined, group: Group, stderr: string): FleetError {
    const missing = configurationMissing(group, host, stderr);
    return new FleetError({
        phase: "evaluate",
        host,
        message: missing
            ? `the flake ${group.flake} has no NixOS configuration for this host`
            : `evaluating the system of ${host ?? "the fleet"} failed`,
        hint: missing
            ? `check the host's flake and attribute fields (nix flake show ${group.flake})`
            : `fix the Nix error above; nix eval ${group.flake}#${group.prefix} reproduces it`,
        detail: tail(stderr),
    });
}

/**
 * Nix's words when it cannot get a locked source (a pinned reference's store copy gone and the
 * flake no longer hashing the same, a revision not in the repository), as opposed to an error in
 * the configuration it evaluates.
 */
const LOCKED_SOURCE_UNAVAILABLE = /NAR hash mismatch|hash mismatch in input|getting status of '\/nix\/store\/|cannot find Git revision|fatal: (bad object|not a valid object name)|unable to download/i;

/** The group's cache key from the flake's metadata, or undefined when its locked content cannot be read (then no cache). */
function keyOf(group: Group, cache: EvaluationCache, metadata: unknown): string | undefined {
    const content = lockedContent(metadata);
    if (!content) return undefined;
    return evalCacheKey({ flake: group.flake, ...content, output: group.prefix, expression: applyExpression(group.hosts), nix: cache.nix });
}

async function groupKey(group: Group, cache: EvaluationCache, options: { fresh?: boolean } = {}): Promise<string | undefined> {
    return keyOf(group, cache, await cache.metadata(group.flake, options));
}

/** A cache entry is used only when it names every host and its .drv files are still in the store. */
function usable(entry: CachedSystems | undefined, group: Group, cache: EvaluationCache): entry is CachedSystems {
    if (!entry) return false;
    const drvs = group.hosts.map((host) => entry[host.name]?.drv);
    return drvs.every((drv): drv is string => typeof drv === "string") && cache.valid(drvs);
}

async function failedGroup(group: Group, options: EvaluateOptions, stderr: string): Promise<never> {
    const errors = group.hosts.length > 1 ? await blameHosts(group, options) : [];
    if (errors.length === 1) throw errors[0]!;
    if (errors.length > 1) {
        throw new FleetError({
            phase: "evaluate",
            message: `evaluation failed for ${errors.length} hosts: ${errors.map((e) => e.host).join(", ")}`,
            hint: errors[0]!.hint,
            detail: errors.map((e) => `${e.host}:\n${e.detail ?? ""}`).join("\n"),
        });
    }
    throw evaluationError(group.hosts.length === 1 ? group.hosts[0]!.name : undefined, group, stderr);
}

/** Evaluates all targets; throws a FleetError naming each failing host. */
export async function evaluateSystems(
    targets: EvaluationTarget[],
    options: EvaluateOptions,
): Promise<Map<string, EvaluatedSystem>> {
    const systems = new Map<string, EvaluatedSystem>();
    for (const group of groupByFlake(targets)) {
        const cache = options.cache;
        const metadata = cache ? await cache.metadata(group.flake) : undefined;
        const key = cache ? keyOf(group, cache, metadata) : undefined;
        // Nix evaluates the content the key names, not whatever the flake holds by then.
        let pinned = key ? pinnedFlakeRef(metadata) : undefined;
        const cached = key && cache ? cache.store.get(key) : undefined;
        let parsed: Record<string, { out?: unknown; drv?: unknown }>;
        let printed: string;
        if (cache && usable(cached, group, cache)) {
            cache.hits += 1;
            parsed = cached;
            printed = JSON.stringify(cached);
        } else {
            if (cache) cache.misses += 1;
            let result = pinned ? await evalGroup({ ...group, pinned }, options) : undefined;
            // A pinned evaluation whose locked source Nix could not get (its store copy collected
            // meanwhile and the flake edited: NAR hash mismatch) is run again on the flake as
            // written, as nixos-rebuild would evaluate it now; that result is stored only after the
            // check below. An error in the configuration itself is reported as it is: the flake as
            // written holds the same content, so the hint's command reproduces it, and a broken
            // configuration (tens of seconds of Nix for a real one) is not evaluated twice.
            if (result && result.code !== 0 && LOCKED_SOURCE_UNAVAILABLE.test(result.stderr)) {
                pinned = undefined;
                result = undefined;
            }
            result ??= await evalGroup(group, options);
            if (result.code !== 0) await failedGroup(group, options, result.stderr);
            parsed = JSON.parse(result.stdout) as typeof parsed;
            printed = result.stdout;
        }
        const evaluated: CachedSystems = {};
        for (const host of group.hosts) {
            const entry = parsed[host.name];
            if (!entry || !isStorePath(entry.out) || typeof entry.drv !== "string") {
                throw new FleetError({
                    phase: "evaluate",
                    host: host.name,
                    message: "the evaluation did not produce a system store path",
                    hint: "the attribute must be a NixOS configuration (with config.system.build.toplevel)",
                    detail: printed.slice(0, 2000),
                });
            }
            systems.set(host.name, { storePath: entry.out, drvPath: entry.drv });
            evaluated[host.name] = { out: entry.out, drv: entry.drv };
        }
        // A pinned evaluation read the content the key names. Otherwise (a dirty git tree: no
        // revision, and Nix 2.8 reads its working tree whatever narHash is given) the entry is
        // stored only when the flake did not change while Nix evaluated it (else the key would name
        // other content); an edit undone before the second read still gets past this check.
        if (key && cache && cached !== parsed && pinned) {
            cache.store.set(key, evaluated);
        } else if (key && cache && cached !== parsed) {
            const store = groupKey(group, cache, { fresh: true }).then((now) => {
                if (now === key) cache.store.set(key, evaluated);
            });
            if (cache.pendingStores) cache.pendingStores.push(store.catch(() => undefined));
            else await store;
        }
    }
    return systems;
}

/** A NixOS system as the Host resource takes it: where it comes from, and what it evaluates to. */
export interface NixosSystem extends EvaluatedSystem {
    flake: string;
    attribute: string;
}

/**
 * One system, for programs that build their own hosts (the library's `evaluateSystem`): the flake
 * reference and attribute, and the store and .drv paths `nix eval` gives without building.
 */
export async function evaluateSystem(target: { flake: string; attribute: string }, options: EvaluateOptions): Promise<NixosSystem> {
    const name = target.attribute.split(".").pop() ?? target.attribute;
    // A local reference is made absolute against the directory it was meant for, as host files'
    // are: the Host passes it on to the provider, which runs elsewhere (buildOn: target archives it).
    const flake = resolveFlakeRef(target.flake, options.cwd ?? process.cwd());
    const systems = await evaluateSystems([{ name, flake, attribute: target.attribute }], options);
    return { flake, attribute: target.attribute, ...systems.get(name)! };
}
