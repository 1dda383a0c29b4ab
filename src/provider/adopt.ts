// Adoption by `pulumi import nixos:index:Host <name> <name>`: the engine sends no properties, only
// the id (the host's name). The host's connection settings come from the stack's config (the same
// mapping the program uses), and what the host runs becomes its recorded system. Nothing is
// activated: the next `pulumi up` finds nothing to do when the configuration evaluates to it.
import { FleetError } from "../errors";
import type { HostState } from "../deploy/hostState";
import type { HostInputs, HostOutputs } from "./hostInputs";

/** A host's inputs as the stack's config gives them, without the evaluated system. */
export type ConfiguredHost = Omit<HostInputs, "storePath" | "drvPath" | "pin" | "provenance">;

/** Reads the stack's config for the host named by an import id (resourceName: the URN's name). */
export type ConfiguredInputs = (stack: string, id: string, resourceName: string) => Promise<ConfiguredHost>;

/** The system an adopted host runs, by its action (what a deploy of that action would have set). */
export function adoptedStorePath(state: HostState, action: HostInputs["action"]): string | undefined {
    if (action === "boot") return state.profileStorePath;
    return state.currentStorePath ?? state.profileStorePath;
}

/** The state recorded for an adopted host: what it runs, no deployment of this stack, nothing activated. */
export function adoptedOutputs(configured: ConfiguredHost, state: HostState, now: string): HostOutputs {
    const storePath = adoptedStorePath(state, configured.action);
    if (!storePath) {
        throw new FleetError({
            phase: "read",
            host: configured.name,
            message: "the host runs no NixOS system that could be adopted (no /run/current-system and no system profile)",
            hint: "deploy it with pulumi up instead of importing it",
        });
    }
    const generation = state.profileStorePath === storePath ? (state.generation ?? null) : null;
    return {
        ...configured,
        storePath,
        generation,
        previousGeneration: null,
        // No activation happened: the time the stack took the host over.
        activatedAt: now,
        adoptedAt: now,
        nixosVersion: state.nixosVersion ?? null,
        runningStorePath: state.currentStorePath ?? null,
        bootedStorePath: state.bootedStorePath ?? null,
        profileStorePath: state.profileStorePath ?? null,
        // This stack deployed nothing yet; the host's own generations stay reachable with rollback --to-generation.
        history: [],
        rolledBack: null,
        lastSeenAt: now,
        unreachable: null,
        lastDeploy: { activated: false, generationBefore: generation, generationAfter: generation, pathsCopied: 0, bytesCopied: 0, timings: {} },
    };
}
