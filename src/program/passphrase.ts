// The dev passphrase (scripts/dev-passphrase, in the repository for everyone to read) protects the
// sandbox stack's secrets and nothing else. Every other stack that keeps its secrets with a
// passphrase must get its own through PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE:
// otherwise a real stack's secrets could end up encrypted with a public passphrase.
import { readFileSync, realpathSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import { FleetError } from "../errors";

/** The one stack the dev passphrase is for. */
export const DEV_STACK = "dev";

export type Environment = Readonly<Record<string, string | undefined>>;

export function devPassphraseFile(projectRoot: string): string {
    return join(projectRoot, "scripts", "dev-passphrase");
}

const HOW_TO_SET =
    "export PULUMI_CONFIG_PASSPHRASE_FILE=~/.config/nixos-fleet/<stack>-passphrase (a file only you can read), " +
    "or PULUMI_CONFIG_PASSPHRASE, or move the stack to another secrets provider (pulumi stack change-secrets-provider)";

function samePath(a: string, b: string): boolean {
    const real = (file: string) => {
        try {
            return realpathSync(file);
        } catch {
            return resolve(file);
        }
    };
    return real(a) === real(b);
}

function readText(file: string): string | undefined {
    try {
        return readFileSync(file, "utf8");
    } catch {
        return undefined;
    }
}

/** Whether the environment hands Pulumi the dev passphrase, by file or by value. */
export function usesDevPassphrase(env: Environment, projectRoot: string): boolean {
    const devFile = devPassphraseFile(projectRoot);
    const file = env.PULUMI_CONFIG_PASSPHRASE_FILE;
    if (file && samePath(file, devFile)) return true;
    const dev = readText(devFile);
    if (dev === undefined || dev.trim() === "") return false;
    const same = (text: string | undefined) => text !== undefined && (text === dev || text.trim() === dev.trim());
    // A copy of the file, or its text in the variable, is the same public passphrase.
    return (file ? same(readText(file)) : false) || (env.PULUMI_CONFIG_PASSPHRASE !== undefined && same(env.PULUMI_CONFIG_PASSPHRASE));
}

/**
 * Whether the stack keeps its secrets with a passphrase: its Pulumi.<stack>.yaml says
 * `secretsprovider: passphrase` or has a passphrase salt, or it says nothing and the backend is a
 * self-managed one (file://, s3://, ...), whose default is the passphrase provider.
 */
export function usesPassphraseProvider(stackFileText: string | undefined, env: Environment): boolean {
    let settings: { secretsprovider?: unknown; encryptionsalt?: unknown } = {};
    try {
        settings = (stackFileText ? (parse(stackFileText) as typeof settings | null) : undefined) ?? {};
    } catch {
        // Pulumi reports an unreadable stack file itself.
    }
    if (typeof settings.secretsprovider === "string") return settings.secretsprovider === "passphrase";
    if (settings.encryptionsalt !== undefined) return true;
    return /^(file|s3|gs|azblob):\/\//.test(env.PULUMI_BACKEND_URL ?? "");
}

/** The passphrase Pulumi reads: the variable when set (even empty), else the file's text (undefined when unreadable). */
function givenPassphrase(env: Environment): string | undefined {
    if (env.PULUMI_CONFIG_PASSPHRASE !== undefined) return env.PULUMI_CONFIG_PASSPHRASE;
    return env.PULUMI_CONFIG_PASSPHRASE_FILE ? readText(env.PULUMI_CONFIG_PASSPHRASE_FILE) : undefined;
}

/** Why this stack may not run with this environment's passphrase settings, or undefined. */
export function passphraseProblem(options: { stack: string; projectRoot: string; env: Environment; stackFileText?: string }): FleetError | undefined {
    const { stack, projectRoot, env } = options;
    if (stack === DEV_STACK) return undefined;
    if (usesDevPassphrase(env, projectRoot)) {
        return new FleetError({
            phase: "config",
            message: `stack ${stack} is given the dev passphrase (scripts/dev-passphrase), which is public and protects only the ${DEV_STACK} stack`,
            hint: `give ${stack} its own: ${HOW_TO_SET.replace("<stack>", stack)}`,
        });
    }
    const text = options.stackFileText ?? readText(join(projectRoot, `Pulumi.${stack}.yaml`));
    if (env.PULUMI_CONFIG_PASSPHRASE !== undefined || env.PULUMI_CONFIG_PASSPHRASE_FILE) {
        // An empty passphrase encrypts as well as a public one: `PULUMI_CONFIG_PASSPHRASE=` is not a passphrase.
        if (givenPassphrase(env)?.trim() !== "" || !usesPassphraseProvider(text, env)) return undefined;
        return new FleetError({
            phase: "config",
            message: `stack ${stack} is given an empty passphrase (${env.PULUMI_CONFIG_PASSPHRASE !== undefined ? "PULUMI_CONFIG_PASSPHRASE is empty" : "PULUMI_CONFIG_PASSPHRASE_FILE is an empty file"}), which protects its secrets no better than none`,
            hint: HOW_TO_SET.replace("<stack>", stack),
        });
    }
    if (!usesPassphraseProvider(text, env)) return undefined;
    return new FleetError({
        phase: "config",
        message: `stack ${stack} keeps its secrets with a passphrase, but neither PULUMI_CONFIG_PASSPHRASE nor PULUMI_CONFIG_PASSPHRASE_FILE is set`,
        hint: HOW_TO_SET.replace("<stack>", stack),
    });
}

/**
 * The variables Pulumi needs for this stack's passphrase: the dev passphrase file for the dev
 * stack when nothing is set, nothing otherwise. Throws passphraseProblem's error.
 */
export function passphraseEnvFor(stack: string, projectRoot: string, env: Environment): Record<string, string> {
    const problem = passphraseProblem({ stack, projectRoot, env });
    if (problem) throw problem;
    if (stack === DEV_STACK && env.PULUMI_CONFIG_PASSPHRASE === undefined && !env.PULUMI_CONFIG_PASSPHRASE_FILE) {
        return { PULUMI_CONFIG_PASSPHRASE_FILE: devPassphraseFile(projectRoot) };
    }
    return {};
}
