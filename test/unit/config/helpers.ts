// Test helpers: temporary project roots with host files, and access to the problems of a
// FleetConfigError.
import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import type { FleetError } from "../../../src/errors";
import { FleetConfigError } from "../../../src/config";
import { tempDir } from "../helpers/fixtures";

/** Creates <tmp>/hosts/<name> for each entry and returns the project root. */
export function projectWithHosts(files: Record<string, string>): string {
    const root = tempDir("nixos-fleet-config-");
    fs.mkdirSync(path.join(root, "hosts"));
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(root, "hosts", name), text);
    return root;
}

/** Runs `action`, expects a FleetConfigError and returns its problems. */
export function problemsOf(action: () => unknown): readonly FleetError[] {
    try {
        action();
    } catch (error) {
        expect(error).toBeInstanceOf(FleetConfigError);
        return (error as FleetConfigError).problems;
    }
    throw new Error("expected a FleetConfigError, but nothing was thrown");
}

export async function problemsOfAsync(action: () => Promise<unknown>): Promise<readonly FleetError[]> {
    try {
        await action();
    } catch (error) {
        expect(error).toBeInstanceOf(FleetConfigError);
        return (error as FleetConfigError).problems;
    }
    throw new Error("expected a FleetConfigError, but nothing was thrown");
}

/** The single problem of a failing action. */
export function onlyProblem(action: () => unknown): FleetError {
    const problems = problemsOf(action);
    expect(problems.map((problem) => problem.message)).toHaveLength(1);
    return problems[0]!;
}
