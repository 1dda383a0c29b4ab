// nixos-fleet:secrets.<host>.<name>: defaults, strict fields, safe paths and names, and messages
// that name the stack key and never the value.
import { describe, expect, it } from "vitest";
import { parseStackConfig } from "../../../src/config";
import { secretPathProblem } from "../../../src/config/secretFiles";
import { problemsOf } from "./helpers";

const baseDir = "/project";
const parse = (secrets: unknown) => parseStackConfig({ hosts: ["alpha"], secrets }, { baseDir, file: "Pulumi.prod.yaml" });

describe("secret files in the stack config", () => {
    it("fills in the defaults: root:root, 0400, pre-activation; path under /run/keys by default", () => {
        const stack = parse({ alpha: { dbpass: { value: "x" }, token: { value: "y", path: "/var/lib/app/token", owner: "app", group: "app", mode: "0440", uploadAt: "post-activation" } } });
        expect(stack.secrets.alpha!.dbpass).toEqual({ value: "x", owner: "root", group: "root", mode: "0400", uploadAt: "pre-activation" });
        expect(stack.secrets.alpha!.token).toEqual({ value: "y", path: "/var/lib/app/token", owner: "app", group: "app", mode: "0440", uploadAt: "post-activation" });
    });

    it("names each bad setting by its stack key, with a hint", () => {
        const problems = problemsOf(() =>
            parse({
                alpha: {
                    a: { value: "x", path: "keys/a" },
                    b: { value: "x", path: "/run/keys/../../etc/shadow" },
                    c: { value: "x", owner: "Robert'); DROP" },
                    d: { value: "x", mode: "4755" },
                    e: { value: "x", uploadAt: "later" },
                    f: { value: "x", colour: "blue" },
                    g: { value: "x", path: "/nix/store/abc-key" },
                    ".hidden": { value: "x" },
                    h: {},
                },
            }),
        );
        const byField = Object.fromEntries(problems.map((problem) => [problem.field, problem]));
        expect(byField["nixos-fleet:secrets.alpha.a.path"]!.message).toMatch(/absolute path/);
        expect(byField["nixos-fleet:secrets.alpha.b.path"]!.message).toMatch(/'\.\.'/);
        expect(byField["nixos-fleet:secrets.alpha.c.owner"]!.message).toMatch(/user or group name/);
        expect(byField["nixos-fleet:secrets.alpha.d.mode"]!.message).toMatch(/octal mode/);
        expect(byField["nixos-fleet:secrets.alpha.e.uploadAt"]!.message).toMatch(/pre-activation/);
        expect(problems.some((problem) => problem.field?.startsWith("nixos-fleet:secrets.alpha.f") && /colour/.test(`${problem.field} ${problem.message}`))).toBe(true);
        expect(byField["nixos-fleet:secrets.alpha.g.path"]!.message).toMatch(/world-readable/);
        expect(problems.some((problem) => /secret name/.test(problem.message))).toBe(true);
        expect(byField["nixos-fleet:secrets.alpha.h.value"]!.message).toMatch(/config set --secret/);
        expect(byField["nixos-fleet:secrets.alpha.a.path"]!.hint).toBeTruthy();
        for (const problem of problems) expect(problem.file).toBe("Pulumi.prod.yaml");
    });

    it("refuses two secrets writing one file, and a non-text value without showing it", () => {
        const same = problemsOf(() => parse({ alpha: { a: { value: "x", path: "/run/keys/b" }, b: { value: "y" } } }));
        expect(same.map((problem) => [problem.field, problem.message])).toEqual([["nixos-fleet:secrets.alpha.b.path", "secrets a and b both write /run/keys/b"]]);
        const list = problemsOf(() => parse({ alpha: { c: { value: ["hunter2-list"] } } }));
        expect(list.map((problem) => problem.field)).toEqual(["nixos-fleet:secrets.alpha.c.value"]);
        expect(JSON.stringify(list.map((problem) => problem.toJSON()))).not.toMatch(/hunter2-list/);
        // A number is text too (`config set --path` may store one as a number).
        expect(parse({ alpha: { pin: { value: 1234 } } }).secrets.alpha!.pin!.value).toBe("1234");
    });

    it("suggests the right key for a misspelt secrets key", () => {
        const problems = problemsOf(() => parseStackConfig({ hosts: ["alpha"], secret: {} }, { baseDir }));
        expect(problems[0]!.hint).toMatch(/did you mean "secrets"/);
    });

    it("path rules", () => {
        expect(secretPathProblem("/run/keys/dbpass")).toBeUndefined();
        expect(secretPathProblem("/run/keys/")).toMatch(/directory/);
        expect(secretPathProblem("/run/./keys/x")).toMatch(/'\.'/);
        expect(secretPathProblem("/run/keys/a\u0007")).toMatch(/control/);
    });
});
