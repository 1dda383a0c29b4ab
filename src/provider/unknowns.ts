// Values the engine does not know yet. During a preview, an input that is another resource's
// Output (the address of a server being created, its host key, …) reaches the provider as
// Pulumi's "unknown" sentinel; by the time create or update runs, the engine has resolved it.
import type { CheckFailure } from "@pulumi/pulumi/provider";
import { unknownValue } from "@pulumi/pulumi/runtime/rpc";

export const UNKNOWN = unknownValue;

/** The top-level input keys whose value (or any part of it) is not known yet. */
export function unknownKeys(inputs: Record<string, unknown>): string[] {
    return Object.keys(inputs).filter((key) => containsUnknown(inputs[key]));
}

function containsUnknown(value: unknown): boolean {
    if (value === UNKNOWN) return true;
    if (Array.isArray(value)) return value.some(containsUnknown);
    if (value !== null && typeof value === "object") return Object.values(value).some(containsUnknown);
    return false;
}

/** The preview's line for a host whose inputs wait on other resources. */
export function pendingMessage(name: unknown, keys: readonly string[]): string {
    const who = typeof name === "string" && name !== UNKNOWN ? name : "this host";
    return `${who}: ${keys.join(", ")} ${keys.length === 1 ? "is" : "are"} not known until the resources ${keys.length === 1 ? "it comes" : "they come"} from exist; the host is deployed once its server exists`;
}

/** Check failures, leaving out the inputs that are not known yet (they are checked when they are). */
export function checkFailures(issues: readonly { path: PropertyKey[]; message: string; params?: { hint?: unknown } }[], unknown: readonly string[]): CheckFailure[] {
    return issues
        .filter((issue) => !unknown.includes(String(issue.path[0])))
        .map((issue) => ({
            property: issue.path.map(String).join(".") || "(inputs)",
            // The rules shared with host files carry a hint (config/rules.ts failure()): say it here too.
            reason: typeof issue.params?.hint === "string" ? `${issue.message} (${issue.params.hint})` : issue.message,
        }));
}
