// The Automation API's PulumiCommand for `pulumi` on PATH, from a `pulumi version` main.ts already
// ran (prefetch.ts): PulumiCommand.get would run it again, after the Automation API has loaded.
import { PulumiCommand } from "@pulumi/pulumi/automation";
import { createRequire } from "node:module";

/** The Pulumi CLI major version the Automation API here works with (as PulumiCommand.get checks). */
const MAJOR = 3;

/**
 * What PulumiCommand.get returns for this output of `pulumi version`; undefined when the output is
 * not a version this SDK accepts (then PulumiCommand.get runs and reports it in its own words).
 */
export function pulumiCommandOf(versionOutput: string): PulumiCommand | undefined {
    // The SDK's own semver: the workspace compares versions with it (a SemVer of another copy is not one to it).
    const { SemVer } = createRequire(require.resolve("@pulumi/pulumi/automation"))("semver") as typeof import("semver");
    let version;
    try {
        version = new SemVer(versionOutput.trim());
    } catch {
        return undefined;
    }
    // Below the SDK's minimum, PulumiCommand.get refuses it (unless told to skip the check): let it say so.
    const { minimumVersion } = require("@pulumi/pulumi/automation/minimumVersion") as { minimumVersion: import("semver").SemVer };
    if (version.major !== MAJOR || version.compare(minimumVersion) < 0) return undefined;
    // Its constructor is private; command and version are its public fields, run() its method.
    return Object.assign(Object.create(PulumiCommand.prototype) as PulumiCommand, { command: "pulumi", version });
}
