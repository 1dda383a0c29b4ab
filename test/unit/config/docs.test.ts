// The examples in docs/host-config.md must stay valid.
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { parseHostFile, parseStackConfig } from "../../../src/config";

const projectRoot = path.resolve(__dirname, "../../..");
const docs = fs.readFileSync(path.join(projectRoot, "docs/host-config.md"), "utf8");

/** The ```yaml block whose first line is `# <title>`. */
function example(title: string): string {
    const block = [...docs.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1] ?? "").find((text) => text.startsWith(`# ${title}\n`));
    if (block === undefined) throw new Error(`no example "${title}" in docs/host-config.md`);
    return block;
}

/** The `nixos-fleet:*` keys of a Pulumi stack file, as the settings object. */
function stackSettings(text: string): unknown {
    const config = (parse(text) as { config: Record<string, unknown> }).config;
    return Object.fromEntries(Object.entries(config).map(([key, value]) => [key.replace(/^nixos-fleet:/, ""), value]));
}

describe("docs/host-config.md examples", () => {
    it("hosts/psi.yaml is a valid host file", () => {
        const result = parseHostFile({ path: path.join(projectRoot, "hosts/psi.yaml"), text: example("hosts/psi.yaml") }, projectRoot);
        expect(result.problems.map((problem) => problem.message)).toEqual([]);
        expect(result.host).toMatchObject({ name: "psi", user: "deploy", flake: "github:example/fleet", attribute: "nixosConfigurations.psi" });
    });

    it.each(["Pulumi.dev.yaml", "Pulumi.prod.yaml"])("%s has valid stack settings", (file) => {
        expect(() => parseStackConfig(stackSettings(example(file)), { baseDir: projectRoot })).not.toThrow();
    });
});
