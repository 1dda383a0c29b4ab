// What a host's state remembers beside its deployments: that it is rolled back (so a config without
// the rollback's pin never deploys over it silently), and whether the last refresh reached it.
import type { DeploymentRecord, HostInputs, HostOutputs, RollbackMark, Unreachable } from "./hostInputs";

/** The stack's name in a URN (urn:pulumi:<stack>::project::type::name). */
export function stackOfUrn(urn: string): string {
    return /^urn:pulumi:([^:]+)::/.exec(urn)?.[1] ?? "<stack>";
}

/**
 * The rollback mark after a deploy: a pinned deploy is a rollback (kept as it was when the host was
 * already on that pinned system, so its time and operator stay those of the rollback); a deploy of
 * the configuration ends it.
 */
export function rollbackMarkAfterDeploy(inputs: HostInputs, record: DeploymentRecord, old?: Partial<HostOutputs>): RollbackMark | null {
    if (!inputs.pin) return null;
    const previous = old?.rolledBack;
    if (previous && previous.storePath === inputs.storePath) return previous;
    return {
        generation: record.generation,
        storePath: inputs.storePath,
        at: record.activatedAt,
        by: inputs.provenance?.operator ?? null,
        reason: inputs.pin.reason ?? null,
        rollbackTo: record.rollbackTo ?? null,
    };
}

function isMark(value: unknown): value is RollbackMark {
    return typeof value === "object" && value !== null && typeof (value as RollbackMark).storePath === "string";
}

/**
 * The rollback a planned update undoes: the state says the host is rolled back and the new inputs
 * deploy another system than the rolled-back one: the configuration (no pin), or another pin (a
 * new rollback, or a stale pin from an older Pulumi.<stack>.yaml). Undefined otherwise (also when
 * the configuration happens to be the rolled-back system: nothing on the host changes).
 */
export function undoneRollback(olds: Record<string, unknown>, news: Record<string, unknown>): RollbackMark | undefined {
    const mark = olds.rolledBack;
    if (!isMark(mark)) return undefined;
    if (news.storePath === mark.storePath) return undefined;
    return mark;
}

/** `the rollback to generation 3 (by alice@laptop at 2025-…)`: how rows and warnings name it. */
export function describeRollback(mark: RollbackMark): string {
    return `the rollback to generation ${mark.generation ?? "-"} (by ${mark.by ?? "an unknown operator"} at ${mark.at})`;
}

/** The config's pin in a host's inputs, if any. */
function pinOf(news: Record<string, unknown>): { generation?: number; reason?: string } | undefined {
    const pin = news.pin;
    return typeof pin === "object" && pin !== null ? (pin as { generation?: number; reason?: string }) : undefined;
}

/** `the config's pin to generation 1 (rollback to … (time))`. */
function describePin(pin: { generation?: number; reason?: string }): string {
    return `the config's pin to generation ${pin.generation ?? "-"}${pin.reason ? ` (${pin.reason})` : ""}`;
}

/** What a row says of the rollback an update undoes: `undoes …`, or with a pin `replaces … with the config's pin …`. */
export function undoneRollbackReason(mark: RollbackMark, news: Record<string, unknown>, tense: "plan" | "done"): string {
    const pin = pinOf(news);
    if (pin) return `${tense === "plan" ? "replaces" : "replaced"} ${describeRollback(mark)} with ${describePin(pin)}`;
    return `${tense === "plan" ? "undoes" : "undid"} ${describeRollback(mark)}`;
}

/** The warning on the host's row of a preview or update that undoes its rollback. */
export function undoWarning(name: string, stack: string, mark: RollbackMark, news: Record<string, unknown>): string {
    const pin = pinOf(news);
    if (pin) {
        return (
            `${name}: this update replaces ${describeRollback(mark)} (${mark.storePath}) with ${describePin(pin)} (${String(news.storePath)}). ` +
            `If that pin is stale (an older Pulumi.${stack}.yaml), put back the pin the rollback wrote (nixos-fleet:pins.${name}) and commit it`
        );
    }
    return (
        `${name}: this update undoes ${describeRollback(mark)}: the stack's config has no rollback pin for ${name}, ` +
        `so its configuration (${String(news.storePath)}) replaces the rolled-back ${mark.storePath}. ` +
        `To keep the rollback, put the pin back in Pulumi.${stack}.yaml (nixos-fleet:pins.${name}, as \`npm run rollback\` wrote it) and commit it; ` +
        `to end the rollback on purpose: npm run rollback -- --clear --hosts ${name}`
    );
}

/** The first line of an error's text, for the state. */
const firstLine = (text: string): string => text.split("\n")[0] ?? "";

/** When the stack last reached the host, for states written before lastSeenAt existed: its last activation. */
export function lastSeen(old: Partial<HostOutputs>): string | null {
    return old.lastSeenAt ?? old.activatedAt ?? null;
}

/**
 * A refresh that could not reach the host keeps everything the state recorded and marks it
 * unreachable: since when, checked when, why; lastSeenAt stays the last time it was reached.
 */
export function outputsWhenUnreachable(old: HostOutputs, error: string, now: string): HostOutputs {
    const unreachable: Unreachable = { since: old.unreachable?.since ?? now, checkedAt: now, error: firstLine(error) };
    return { ...old, lastSeenAt: lastSeen(old), unreachable };
}

/** The warning naming a host a refresh could not reach. */
export function unreachableWarning(old: HostOutputs, error: string): string {
    const seen = lastSeen(old);
    return (
        `${old.name}: unreachable, not refreshed (${firstLine(error).replace(/^host \S+: /, "")}): its last recorded state is kept ` +
        `(generation ${old.generation ?? "-"}, ${old.storePath}) and marked unreachable; last seen ${seen ?? "never"}. ` +
        "Run pulumi refresh again when it is back"
    );
}
