// scripts/env.sh and scripts/pulumi hand the dev passphrase to pulumi for the dev stack only. Run
// against a fake `pulumi` that prints what it was given (no real pulumi, no state).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "../helpers/fixtures";

const ROOT = path.resolve(__dirname, "../../..");

/** A project copy with the scripts and a fake pulumi on PATH; FAKE_SELECTED is its selected stack. */
function fakeProject(): { root: string; env: NodeJS.ProcessEnv } {
    const root = tempDir("nf-scripts-");
    fs.mkdirSync(path.join(root, "scripts", "lib"), { recursive: true });
    for (const file of ["env.sh", "pulumi", "dev-passphrase", "lib/passphrase.sh", "lib/common.sh"]) {
        fs.copyFileSync(path.join(ROOT, "scripts", file), path.join(root, "scripts", file));
    }
    fs.mkdirSync(path.join(root, "fakebin"));
    const fake = path.join(root, "fakebin", "pulumi");
    fs.writeFileSync(
        fake,
        [
            "#!/bin/sh",
            // An empty --cwd is the current directory, as for pulumi.
            'if [ "$1" = --cwd ] && [ -z "$2" ]; then shift 2; fi',
            // Another project's directory (--cwd) has its selected stack in .selected.
            'if [ "$1 $3 $4" = "--cwd stack --show-name" ]; then cat "$2/.selected" 2>/dev/null && exit 0; exit 255; fi',
            'if [ "$1 $2" = "stack --show-name" ]; then [ -n "$FAKE_SELECTED" ] && echo "$FAKE_SELECTED" && exit 0; exit 255; fi',
            'case " $* " in *" config get nixos-fleet:parallel "*)',
            '    [ -z "$FAKE_LOG" ] || echo "stdin=$(readlink /proc/$$/fd/0) args=$*" >>"$FAKE_LOG"',
            '    [ -n "$FAKE_PARALLEL" ] && echo "$FAKE_PARALLEL" && exit 0; echo "error: configuration key not found" >&2; exit 255 ;;',
            "esac",
            'if [ -n "$FAKE_SHOW_PARALLEL" ]; then echo "parallel=${PULUMI_PARALLEL:-} args=$*"; exit 0; fi',
            'echo "file=${PULUMI_CONFIG_PASSPHRASE_FILE:-} value=${PULUMI_CONFIG_PASSPHRASE-unset} args=$*"',
            "",
        ].join("\n"),
        { mode: 0o755 },
    );
    const env: NodeJS.ProcessEnv = { PATH: `${path.join(root, "fakebin")}:${process.env.PATH ?? ""}`, HOME: root, FAKE_SELECTED: "" };
    return { root, env };
}

function run(command: string, env: NodeJS.ProcessEnv, cwd: string): string {
    const result = spawnSync("bash", ["-c", command], { env, cwd, encoding: "utf8" });
    expect(result.status, result.stderr).toBe(0);
    return result.stdout.trim();
}

describe("scripts/pulumi (npm run pulumi)", () => {
    const { root, env } = fakeProject();
    const devFile = path.join(root, "scripts", "dev-passphrase");
    const pulumi = (args: string, extra: NodeJS.ProcessEnv = {}) => run(`scripts/pulumi ${args}`, { ...env, ...extra }, root);

    it.each(["preview -s dev", "preview --stack dev", "preview --stack=dev", "preview -sdev", "preview -s=dev", "up --yes -s dev --skip-preview", "stack init dev --secrets-provider passphrase"])(
        "%s gets the dev passphrase file",
        (args) => {
            expect(pulumi(args)).toBe(`file=${devFile} value=unset args=${args}`);
        },
    );

    it.each(["preview -s prod", "preview --stack=prod", "stack init prod", "preview -s devx", "preview -s prod -- -s dev", "version"])("%s does not", (args) => {
        expect(pulumi(args)).toMatch(/^file= value=unset /);
    });

    it("follows the selected stack when no stack is given", () => {
        expect(pulumi("preview", { FAKE_SELECTED: "dev" })).toBe(`file=${devFile} value=unset args=preview`);
        expect(pulumi("preview", { FAKE_SELECTED: "prod" })).toBe("file= value=unset args=preview");
        expect(pulumi("preview -s prod", { FAKE_SELECTED: "dev" })).toBe("file= value=unset args=preview -s prod");
    });

    it("with -C/--cwd, follows the selected stack of that project, not the current directory's", () => {
        const other = tempDir("nf-other-project-");
        fs.writeFileSync(path.join(other, ".selected"), "dev\n");
        for (const args of [`-C ${other} preview`, `--cwd ${other} preview`, `--cwd=${other} preview`, `preview -C ${other}`, `-C=${other} preview`, `-C${other} preview`]) {
            expect(pulumi(args, { FAKE_SELECTED: "prod" })).toBe(`file=${devFile} value=unset args=${args}`);
        }
        fs.writeFileSync(path.join(other, ".selected"), "prod\n");
        expect(pulumi(`-C ${other} preview`, { FAKE_SELECTED: "dev" })).toBe(`file= value=unset args=-C ${other} preview`);
        expect(pulumi(`-C=${other} preview`, { FAKE_SELECTED: "dev" })).toBe(`file= value=unset args=-C=${other} preview`);
    });

    it("a -C value is a directory, never a command: odd values (empty, a leading dash, shell syntax) run nothing and reach pulumi as given", () => {
        const marker = path.join(root, "ran");
        for (const dir of [`'$(touch ${marker})'`, `'; touch ${marker}'`, "-s", "'-s dev'", "'dir with spaces'", "-"]) {
            // Not the dev stack's project: no dev passphrase, whatever the current directory selected.
            expect(pulumi(`-C ${dir} preview`, { FAKE_SELECTED: "dev" })).toMatch(/^file= value=unset args=-C /);
        }
        expect(fs.existsSync(marker)).toBe(false);
        // An empty one is the current directory (pulumi's reading too).
        for (const args of ["-C '' preview", "--cwd= preview", "-C= preview"]) {
            expect(pulumi(args, { FAKE_SELECTED: "dev" })).toBe(`file=${devFile} value=unset args=${args.replace(" ''", " ")}`);
        }
    });

    it("-s prod refresh is a refresh: the unreachable-host check runs after it (pulumi finds the command after -s prod)", () => {
        fs.writeFileSync(path.join(root, "fakebin", "node"), '#!/bin/sh\necho "node $*"\n', { mode: 0o755 });
        try {
            const out = pulumi("-s prod refresh --yes").split("\n");
            expect(out[0]).toBe("file= value=unset args=-s prod refresh --yes");
            expect(out[1]).toMatch(/^node -r ts-node\/register\/transpile-only src\/cli\/main\.ts refresh-check prod \d+$/);
        } finally {
            fs.rmSync(path.join(root, "fakebin", "node"));
        }
    });

    it("import: no code generation unless asked (the provider has no schema, so pulumi would exit 1 after importing)", () => {
        expect(pulumi("import -s prod nixos:index:Host psi psi --yes")).toBe("file= value=unset args=import -s prod nixos:index:Host psi psi --yes --generate-code=false");
        expect(pulumi("import -s prod nixos:index:Host psi psi --generate-code=true")).toBe("file= value=unset args=import -s prod nixos:index:Host psi psi --generate-code=true");
        expect(pulumi("preview -s prod")).toBe("file= value=unset args=preview -s prod");
        expect(pulumi("-s prod import nixos:index:Host psi psi --yes")).toBe("file= value=unset args=-s prod import nixos:index:Host psi psi --yes --generate-code=false");
    });

    it("never replaces a passphrase the operator set", () => {
        expect(pulumi("preview -s dev", { PULUMI_CONFIG_PASSPHRASE_FILE: "/home/ops/p" })).toBe("file=/home/ops/p value=unset args=preview -s dev");
        expect(pulumi("preview -s dev", { PULUMI_CONFIG_PASSPHRASE: "" })).toBe("file= value= args=preview -s dev");
    });
});

describe("scripts/pulumi up: hosts at once", () => {
    const { root, env } = fakeProject();
    const pulumi = (args: string, extra: NodeJS.ProcessEnv = {}) => run(`scripts/pulumi ${args}`, { ...env, FAKE_SHOW_PARALLEL: "1", ...extra }, root);

    it("the stack's nixos-fleet:parallel, else no limit (not the engine's 4 × cores)", () => {
        expect(pulumi("up -s prod --yes", { FAKE_PARALLEL: "3" })).toBe("parallel=3 args=up -s prod --yes");
        expect(pulumi("up -s prod --yes")).toBe("parallel=2147483647 args=up -s prod --yes");
        expect(pulumi("up --yes", { FAKE_SELECTED: "prod", FAKE_PARALLEL: "5" })).toBe("parallel=5 args=up --yes");
    });

    it("an operator's --parallel or PULUMI_PARALLEL wins; other commands are left to the engine", () => {
        expect(pulumi("up -s prod --parallel 2", { FAKE_PARALLEL: "3" })).toBe("parallel= args=up -s prod --parallel 2");
        expect(pulumi("up -s prod -p2", { FAKE_PARALLEL: "3" })).toBe("parallel= args=up -s prod -p2");
        expect(pulumi("up -s prod", { FAKE_PARALLEL: "3", PULUMI_PARALLEL: "7" })).toBe("parallel=7 args=up -s prod");
        expect(pulumi("preview -s prod", { FAKE_PARALLEL: "3" })).toBe("parallel= args=preview -s prod");
    });

    it("finds up after pulumi's global flags (-s prod up, -C dir up), as pulumi does", () => {
        expect(pulumi("-s prod up --yes", { FAKE_PARALLEL: "3" })).toBe("parallel=3 args=-s prod up --yes");
        expect(pulumi("--stack prod up", { FAKE_PARALLEL: "3" })).toBe("parallel=3 args=--stack prod up");
        expect(pulumi("--non-interactive -e -s prod update", { FAKE_PARALLEL: "3" })).toBe("parallel=3 args=--non-interactive -e -s prod update");
        expect(pulumi("-s prod preview", { FAKE_PARALLEL: "3" })).toBe("parallel= args=-s prod preview");
        expect(pulumi("-s prod up --preview-only", { FAKE_PARALLEL: "3" })).toBe("parallel= args=-s prod up --preview-only");
    });

    it("reads the config where up will (-C, --config-file), never from a terminal; -c nixos-fleet:parallel=N of the command line wins", () => {
        const log = path.join(root, "config-get.log");
        expect(pulumi("-C /srv/fleet --config-file other.yaml up -s prod", { FAKE_PARALLEL: "3", FAKE_LOG: log })).toBe("parallel=3 args=-C /srv/fleet --config-file other.yaml up -s prod");
        expect(fs.readFileSync(log, "utf8")).toBe("stdin=/dev/null args=--cwd /srv/fleet --config-file other.yaml config get nixos-fleet:parallel --stack prod --non-interactive\n");
        // pulumi's parser also takes -C=dir and -Cdir.
        fs.rmSync(log);
        pulumi("-C=/srv/a up -s prod", { FAKE_PARALLEL: "3", FAKE_LOG: log });
        pulumi("-C/srv/b up -s prod", { FAKE_PARALLEL: "3", FAKE_LOG: log });
        expect(fs.readFileSync(log, "utf8")).toBe(
            "stdin=/dev/null args=--cwd /srv/a config get nixos-fleet:parallel --stack prod --non-interactive\n" +
                "stdin=/dev/null args=--cwd /srv/b config get nixos-fleet:parallel --stack prod --non-interactive\n",
        );
        expect(pulumi("up -s prod -c nixos-fleet:parallel=2", { FAKE_PARALLEL: "3" })).toBe("parallel=2 args=up -s prod -c nixos-fleet:parallel=2");
        expect(pulumi("up -s prod --config=nixos-fleet:parallel=7", { FAKE_PARALLEL: "3" })).toBe("parallel=7 args=up -s prod --config=nixos-fleet:parallel=7");
    });

    it("a value outside 1-1000 is no limit (the program refuses it, naming the setting), never passed to the engine", () => {
        for (const value of ["0", "1001", "99999999999", "-1", "2 ", "abc"]) {
            expect(pulumi("up -s prod", { FAKE_PARALLEL: value })).toBe("parallel=2147483647 args=up -s prod");
        }
        expect(pulumi("up -s prod", { FAKE_PARALLEL: "1000" })).toBe("parallel=1000 args=up -s prod");
    });
});

describe("source scripts/env.sh", () => {
    const { root, env } = fakeProject();
    const devFile = path.join(root, "scripts", "dev-passphrase");

    it("exports no passphrase, and its pulumi adds the dev one for the dev stack only, without leaking it", () => {
        const out = run(
            [
                "source scripts/env.sh",
                'echo "exported=${PULUMI_CONFIG_PASSPHRASE_FILE:-none}"',
                "pulumi preview -s dev",
                "pulumi preview -s prod",
                'echo "after=${PULUMI_CONFIG_PASSPHRASE_FILE:-none}"',
            ].join("\n"),
            env,
            root,
        ).split("\n");
        expect(out).toEqual(["exported=none", `file=${devFile} value=unset args=preview -s dev`, "file= value=unset args=preview -s prod", "after=none"]);
    });

    it("keeps pulumi's exit status", () => {
        const result = spawnSync("bash", ["-c", "source scripts/env.sh && pulumi stack --show-name"], { env, cwd: root, encoding: "utf8" });
        expect(result.status).toBe(255);
    });
});

describe("scripts/pulumi against tricky command lines", () => {
    const { root, env } = fakeProject();
    const devFile = path.join(root, "scripts", "dev-passphrase");
    const pulumi = (args: string) => run(`scripts/pulumi ${args}`, env, root);

    it("the last -s wins, as in pulumi: -s dev -s prod gets no dev passphrase", () => {
        expect(pulumi("preview -s dev -s prod")).toMatch(/^file= /);
        expect(pulumi("preview -s prod --stack=dev")).toMatch(new RegExp(`^file=${devFile} `));
    });

    it("a stack named like dev is not dev", () => {
        for (const stack of ["Dev", "dev2", "'dev '", "organization/dev"]) expect(pulumi(`preview -s ${stack}`)).toMatch(/^file= /);
    });
});
