// Opening a stack the project does not have, without a passphrase set: the error names the stack
// (and the known ones), not the passphrase it would need (a file:// backend keeps secrets with
// one). A stand-in `pulumi` lists the stacks.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openFleetStack } from "../../../src/cli/stack";
import { tempDir } from "../helpers/fixtures";

const PATH = process.env.PATH;
afterEach(() => {
    process.env.PATH = PATH;
});

function project(stacks: string[]): string {
    const root = tempDir("nf-open-stack-");
    writeFileSync(join(root, "Pulumi.yaml"), "name: nixos-fleet\nruntime: nodejs\n");
    const bin = tempDir("nf-open-stack-bin-");
    const listing = JSON.stringify(stacks.map((name) => ({ name, current: false })));
    writeFileSync(join(bin, "pulumi"), `#!/bin/sh\n[ "$1 $2" = "stack ls" ] && { echo '${listing}'; exit 0; }\nexit 1\n`, { mode: 0o755 });
    process.env.PATH = `${bin}:${PATH ?? ""}`;
    return root;
}

describe("openFleetStack without a passphrase", () => {
    it("a stack the backend does not list: 'does not exist', with the known stacks", async () => {
        const root = project(["prod", "staging"]);
        const error = await openFleetStack("nope", root, { PULUMI_BACKEND_URL: "file:///srv/state" }).catch((e: unknown) => e);
        expect(error).toMatchObject({ phase: "select", message: `stack "nope" does not exist in this project's backend`, hint: "known stacks: prod, staging" });
    });

    it("a stack the backend lists (its file missing here): the passphrase it needs, as before", async () => {
        const root = project(["prod"]);
        const error = await openFleetStack("prod", root, { PULUMI_BACKEND_URL: "file:///srv/state" }).catch((e: unknown) => e);
        expect((error as Error).message).toMatch(/stack prod keeps its secrets with a passphrase, but neither PULUMI_CONFIG_PASSPHRASE nor PULUMI_CONFIG_PASSPHRASE_FILE is set/);
    });
});
