// A stack's settings read straight from its Pulumi.<stack>.yaml, for code that runs without the
// language host's config (the provider's import, other stacks' hosts): the same validation as the
// program's, values handed over as Pulumi would (structured values as JSON text).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, parseDocument } from "yaml";
import { FleetError } from "../errors";
import { configSourceOf, readStackConfig, type StackConfig } from "./stackConfig";

/**
 * The stack's own name: `prod` also for `acme/prod` (Pulumi Cloud) and
 * `organization/nixos-fleet/prod` (the file backend's full name). Its URNs and its
 * Pulumi.<stack>.yaml name it so.
 */
export function shortStackName(stack: string): string {
    return stack.slice(stack.lastIndexOf("/") + 1);
}

export function stackFileName(stack: string): string {
    return `Pulumi.${shortStackName(stack)}.yaml`;
}

/** The stack's nixos-fleet settings from the file's `config:` mapping; a missing file is a clear error. */
export function readStackConfigFile(projectRoot: string, stack: string, file: string = stackFileName(stack)): StackConfig {
    let text: string;
    try {
        text = readFileSync(join(projectRoot, file), "utf8");
    } catch (error) {
        throw new FleetError({
            phase: "config",
            message: `cannot read the stack's config file ${file}`,
            hint: `run this from the project directory (where Pulumi.yaml is) for stack ${stack}`,
            detail: error instanceof Error ? error.message : String(error),
        });
    }
    const invalid = stackFileYamlError(text, file);
    if (invalid) throw invalid;
    const config = ((parse(text) as { config?: Record<string, unknown> } | null)?.config ?? {});
    const source = configSourceOf(
        Object.fromEntries(Object.entries(config).map(([key, value]) => [key, typeof value === "string" ? value : JSON.stringify(value)])),
    );
    return readStackConfig(source, { baseDir: projectRoot, file });
}

/** The error for a Pulumi.<stack>.yaml that is not valid YAML, naming its file, line and column; undefined when it is valid. */
export function stackFileYamlError(text: string, file: string): FleetError | undefined {
    const error = parseDocument(text).errors[0];
    if (!error) return undefined;
    const at = error.linePos?.[0];
    return new FleetError({
        phase: "config",
        message: `${file}${at ? `:${at.line}:${at.col}` : ""}: not valid YAML: ${error.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")}`,
        hint: `fix ${file}: pulumi reads the stack's config from it`,
    });
}
