// Secret files on hosts (`nixos-fleet:secrets.<host>.<name>` in the stack config): one definition
// of what a secret file may say, used by the stack settings and again by the provider (its inputs
// may also come from an old state or another program). The value itself is never checked beyond
// "a string": it is whatever the operator encrypted with `pulumi config set --secret`.
import { z } from "zod";
import { expecting, failure } from "./rules";

/** A secret's name: the file name under /run/keys by default, so no '/' and no leading '.'. */
export const SECRET_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
export const SECRET_NAME_RULE = "a secret name: letters, digits, '_', '.', '-', not starting with '.' or '-', at most 64 characters";

/** User and group names as useradd accepts them (a trailing '$' for machine accounts). */
export const ACCOUNT_PATTERN = /^[a-z_][a-z0-9_-]{0,30}\$?$/;
const ACCOUNT_RULE = "a user or group name (lowercase letters, digits, '_', '-', starting with a letter or '_')";

export const SECRET_DIR = "/run/keys";
export const UPLOAD_AT = ["pre-activation", "post-activation"] as const;
export type UploadAt = (typeof UPLOAD_AT)[number];

/** Why a path is refused for a secret file, or undefined when it is fine. */
export function secretPathProblem(value: string): string | undefined {
    if (!value.startsWith("/")) return "must be an absolute path";
    if (/[\u0000-\u001f\u007f]/.test(value)) return "must not contain newlines or control characters";
    const parts = value.split("/");
    if (parts.some((part) => part === ".." || part === ".")) return "must not contain '.' or '..' components";
    if (value.endsWith("/")) return "must name a file, not a directory";
    if (value === "/nix/store" || value.startsWith("/nix/")) return "must not be under /nix: the Nix store is world-readable";
    if (value.length > 1024) return "must be at most 1024 characters";
    return undefined;
}

export const secretPath = () =>
    z.string(expecting("an absolute file path")).superRefine((value, context) => {
        const problem = secretPathProblem(value);
        if (problem) context.addIssue({ code: "custom", ...failure(`path ${problem}`, `e.g. path: ${SECRET_DIR}/dbpass (the default)`) });
    });

const account = () => z.string(expecting(ACCOUNT_RULE)).regex(ACCOUNT_PATTERN, expecting(ACCOUNT_RULE));

/** Octal permissions without set-id or sticky bits, e.g. "0400" or "440". */
const mode = () =>
    z
        .string(expecting('an octal mode in quotes such as "0400"'))
        .regex(/^0?[0-7]{3}$/, expecting('an octal mode such as "0400" (no setuid, setgid or sticky bits)'));

const SECRET_FIELDS = "value, path, owner, group, mode, uploadAt";

/** What a secret file's settings are when left out (the stack config's and the provider's). */
export const SECRET_FILE_DEFAULTS = { owner: "root", group: "root", mode: "0400", uploadAt: "pre-activation" } as const;

/** One secret file as the stack config gives it. */
export const secretFileSchema = z.strictObject(
    {
        /** The content; set with `pulumi config set --secret --path 'nixos-fleet:secrets.<host>.<name>.value'`. */
        // Never echoed in a message (it is the secret); a number or boolean is taken as its text.
        value: z
            .union([z.string(), z.number(), z.boolean()], { error: () => "expected the secret's text (set with `pulumi config set --secret`); got another kind of value (not shown)" })
            .transform(String),
        path: secretPath().optional(),
        owner: account().default(SECRET_FILE_DEFAULTS.owner),
        group: account().default(SECRET_FILE_DEFAULTS.group),
        mode: mode().default(SECRET_FILE_DEFAULTS.mode),
        /** pre-activation: before the new system starts (default); post-activation: for owners the new system creates. */
        uploadAt: z.enum(UPLOAD_AT, expecting('"pre-activation" or "post-activation"')).default(SECRET_FILE_DEFAULTS.uploadAt),
    },
    expecting(`a mapping with ${SECRET_FIELDS}`),
);

const secretName = () => z.string(expecting(SECRET_NAME_RULE)).regex(SECRET_NAME_PATTERN, expecting(SECRET_NAME_RULE));

/** All secrets of one host, by name; two secrets may not share a path. */
export const hostSecretsSchema = z
    .record(secretName(), secretFileSchema, expecting("a mapping from secret name to its settings"))
    .superRefine(distinctSecretPaths);

/** Two secrets of a host may not write the same file (the stack config's rule and the provider's). */
export function distinctSecretPaths(files: Readonly<Record<string, { path?: string }>>, context: z.RefinementCtx): void {
    const seen = new Map<string, string>();
    for (const [name, file] of Object.entries(files)) {
        const target = file.path ?? defaultSecretPath(name);
        const other = seen.get(target);
        if (other !== undefined) {
            context.addIssue({ code: "custom", path: [name, "path"], ...failure(`secrets ${other} and ${name} both write ${target}`, "give each secret its own path") });
        }
        seen.set(target, name);
    }
}

export type SecretFileConfig = z.output<typeof secretFileSchema>;

export function defaultSecretPath(name: string): string {
    return `${SECRET_DIR}/${name}`;
}

/** A secret file as the provider deploys it: every setting resolved. */
export interface SecretFile {
    path: string;
    owner: string;
    group: string;
    mode: string;
    uploadAt: UploadAt;
    value: string;
}

export function resolveSecretFile(name: string, file: SecretFileConfig): SecretFile {
    return { path: file.path ?? defaultSecretPath(name), owner: file.owner, group: file.group, mode: file.mode, uploadAt: file.uploadAt, value: file.value };
}

/**
 * The provider's check of a secret file: the same rules; owner, group, mode and uploadAt get the
 * same defaults (check fills them in, so a program need not set them), the path is always given.
 */
export const resolvedSecretFileSchema = z.strictObject({
    path: secretPath(),
    owner: account().default(SECRET_FILE_DEFAULTS.owner),
    group: account().default(SECRET_FILE_DEFAULTS.group),
    mode: mode().default(SECRET_FILE_DEFAULTS.mode),
    uploadAt: z.enum(UPLOAD_AT).default(SECRET_FILE_DEFAULTS.uploadAt),
    /** The file's content: a secret (the provider's schema says so; Host wraps it as one). */
    value: z.string().meta({ secret: true }),
});
