// Secrets as the engine hands them to a provider that accepts secrets (the Node SDK's server says
// it does): a secret value arrives wrapped as { <sig>: <secret sig>, value: … }, in inputs and in
// the recorded outputs alike. The engine keeps an output secret only when the provider returns it
// wrapped, so the provider unwraps what it works on, remembers where the secrets were, and wraps
// the same places again in everything it returns. The texts are kept for masking messages.

export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export type PropertyPath = readonly (string | number)[];

export interface Unwrapped<T> {
    value: T;
    /** Where secrets were, in the unwrapped value. */
    paths: PropertyPath[];
    /** Their texts (strings and numbers inside them), for masking. */
    texts: string[];
}

export function isSecretValue(value: unknown): value is { value: unknown } {
    return typeof value === "object" && value !== null && (value as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

export function secretValue<T>(value: T): { [SIG_KEY]: string; value: T } {
    return { [SIG_KEY]: SECRET_SIG, value };
}

function textsOf(value: unknown, into: string[]): void {
    if (typeof value === "string" || typeof value === "number") into.push(String(value));
    else if (Array.isArray(value)) value.forEach((item) => textsOf(item, into));
    else if (typeof value === "object" && value !== null) Object.values(value).forEach((item) => textsOf(item, into));
}

/** The value without secret wrappers, and where they were. */
export function unwrapSecrets<T = unknown>(value: unknown): Unwrapped<T> {
    const paths: PropertyPath[] = [];
    const texts: string[] = [];
    const walk = (item: unknown, at: PropertyPath): unknown => {
        if (isSecretValue(item)) {
            paths.push(at);
            const inner = walk(item.value, at);
            textsOf(inner, texts);
            return inner;
        }
        if (Array.isArray(item)) return item.map((element, index) => walk(element, [...at, index]));
        if (typeof item === "object" && item !== null) {
            return Object.fromEntries(Object.entries(item).map(([key, element]) => [key, walk(element, [...at, key])]));
        }
        return item;
    };
    return { value: walk(value, []) as T, paths, texts };
}

/** The value with the values at `paths` wrapped as secrets again (paths that are gone are skipped). */
export function wrapSecrets<T>(value: T, paths: readonly PropertyPath[]): T {
    let result: unknown = value;
    // Deepest first, so an inner path is wrapped before an outer one wraps it whole.
    for (const path of [...paths].sort((a, b) => b.length - a.length)) result = wrapAt(result, path);
    return result as T;
}

function wrapAt(value: unknown, path: PropertyPath): unknown {
    if (path.length === 0) return isSecretValue(value) ? value : secretValue(value);
    if (isSecretValue(value)) return value;
    const [head, ...rest] = path;
    if (Array.isArray(value) && typeof head === "number" && head < value.length) {
        return value.map((element, index) => (index === head ? wrapAt(element, rest) : element));
    }
    if (typeof value === "object" && value !== null && !Array.isArray(value) && Object.prototype.hasOwnProperty.call(value, String(head))) {
        const record = value as Record<string, unknown>;
        return { ...record, [String(head)]: wrapAt(record[String(head)], rest) };
    }
    return value;
}

/** Values shorter than this are not masked in text (a "22" would mask every 22 in a message). */
export const MIN_MASKED_LENGTH = 4;

/** The text with every secret text replaced by "[secret]". */
export function maskSecrets(text: string, secrets: readonly string[]): string {
    const forms = secrets.flatMap((secret) => [secret, JSON.stringify(secret).slice(1, -1)]);
    let masked = text;
    // Longest first, so a secret containing another is masked whole.
    for (const secret of [...new Set(forms)].sort((a, b) => b.length - a.length)) {
        if (secret.length >= MIN_MASKED_LENGTH) masked = masked.split(secret).join("[secret]");
    }
    return masked;
}
