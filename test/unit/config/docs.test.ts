// The examples in docs/host-config.md must stay valid.
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { parseHostFile, parseStackConfig } from "../../../src/config";
import { HOST_FIELDS, INPUT_DEFAULT_FIELDS, type HostFieldSpec } from "../../../src/config/hostFields";

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

/** The rows of the first `| Field | Default | Meaning |` table of each ### part of "## Host files": field → default cell. */
function documentedFields(): Map<string, string> {
    const section = docs.split(/^## /m).find((part) => part.startsWith("Host files"));
    if (section === undefined) throw new Error('no "## Host files" section in docs/host-config.md');
    const rows = new Map<string, string>();
    for (const part of section.split(/^### /m).slice(1)) {
        const table = part.split(/\n\n/).find((block) => block.startsWith("| Field | Default |"));
        for (const match of table?.matchAll(/^\| `([A-Za-z]+)` \| ([^|]*) \|/gm) ?? []) {
            if (rows.has(match[1]!)) throw new Error(`${match[1]} is documented twice`);
            rows.set(match[1]!, match[2]!.trim());
        }
    }
    return rows;
}

/** How the docs write a constant default. */
function written(value: unknown): string {
    if (Array.isArray(value) && value.length === 0) return "`[]`";
    return `\`${String(value)}\``;
}

describe("docs/host-config.md documents HOST_FIELDS", () => {
    const documented = documentedFields();
    const fields = HOST_FIELDS as Record<string, HostFieldSpec>;

    it("every host field, and no field that does not exist", () => {
        expect([...documented.keys()].sort()).toEqual(Object.keys(HOST_FIELDS).sort());
    });

    it.each(Object.keys(HOST_FIELDS))("%s: its Default column says its default", (name) => {
        const spec = fields[name]!;
        const cell = documented.get(name);
        if (!("default" in spec)) {
            expect(cell, `${name} has no default`).toMatch(name === "address" ? /^required$/ : spec.derivedDefault ? /^`.+`$/ : /^–$/);
        } else if (typeof spec.default === "object" && !Array.isArray(spec.default)) {
            // A mapping (healthChecks): said in words.
            expect(cell).toMatch(/^no /);
        } else {
            expect(cell!.startsWith(written(spec.default)), `${name}: "${cell}" should start with ${written(spec.default)}`).toBe(true);
        }
    });

    it("names the fields a Host (any language) may leave out: the provider fills them in", () => {
        const section = docs.split(/^## /m).find((part) => part.startsWith("As inputs of nixos:index:Host"));
        expect(section, 'a "## As inputs of nixos:index:Host" section').toBeDefined();
        const line = section!.split("\n").find((text) => text.startsWith("- **Left out, filled in by the provider:**"));
        expect(line).toBeDefined();
        // The fields, up to the first ";" (then the parts of healthChecks and secret files).
        const named = [...line!.split(";")[0]!.matchAll(/`([A-Za-z]+)`/g)].map((match) => match[1]);
        expect(named.sort()).toEqual(["name", ...INPUT_DEFAULT_FIELDS].sort());
    });
});
