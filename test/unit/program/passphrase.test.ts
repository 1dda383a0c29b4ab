import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { configSourceOf } from "../../../src/config";
import { planFleet } from "../../../src/program/fleet";
import { devPassphraseFile, passphraseEnvFor, passphraseProblem, usesPassphraseProvider } from "../../../src/program/passphrase";
import { FakeRunner } from "../helpers/fakeRunner";
import { fleetErrorOf, fleetErrorOfSync, tempDir } from "../helpers/fixtures";

const SALT = "encryptionsalt: v1:EaXys7CVbfI=:v1:Qd9yHUsrO74ljfMs:SSKFXzawBZYrH7+RzWYY6n5qIzkauQ==\n";

/** A project root with scripts/dev-passphrase and the given stack files. */
function project(stackFiles: Record<string, string> = {}): string {
    const root = tempDir("nf-passphrase-");
    fs.mkdirSync(path.join(root, "scripts"));
    fs.writeFileSync(path.join(root, "scripts", "dev-passphrase"), "nixos-fleet-dev-only\n");
    for (const [stack, text] of Object.entries(stackFiles)) fs.writeFileSync(path.join(root, `Pulumi.${stack}.yaml`), text);
    return root;
}

describe("the dev passphrase is for the dev stack only", () => {
    it("dev without a passphrase of its own gets the dev passphrase file", () => {
        const root = project({ dev: SALT });
        expect(passphraseProblem({ stack: "dev", projectRoot: root, env: {} })).toBeUndefined();
        expect(passphraseEnvFor("dev", root, {})).toEqual({ PULUMI_CONFIG_PASSPHRASE_FILE: devPassphraseFile(root) });
        expect(passphraseEnvFor("dev", root, { PULUMI_CONFIG_PASSPHRASE: "mine" })).toEqual({});
    });

    it.each([
        ["the dev file", (root: string) => ({ PULUMI_CONFIG_PASSPHRASE_FILE: devPassphraseFile(root) })],
        ["the dev file by another path", (root: string) => ({ PULUMI_CONFIG_PASSPHRASE_FILE: path.join(root, "scripts", "..", "scripts", "dev-passphrase") })],
        ["a symbolic link to the dev file", (root: string) => {
            fs.symlinkSync(devPassphraseFile(root), path.join(root, "link"));
            return { PULUMI_CONFIG_PASSPHRASE_FILE: path.join(root, "link") };
        }],
        ["the dev passphrase as a value", () => ({ PULUMI_CONFIG_PASSPHRASE: "nixos-fleet-dev-only" })],
        ["the dev passphrase with its newline", () => ({ PULUMI_CONFIG_PASSPHRASE: "nixos-fleet-dev-only\n" })],
    ])("another stack given %s is refused, naming the stack and how to set its own", (_what, env) => {
        const root = project({ prod: SALT });
        const error = fleetErrorOfSync(() => passphraseEnvFor("prod", root, env(root)));
        expect(error.phase).toBe("config");
        expect(error.message).toMatch(/^stack prod is given the dev passphrase \(scripts\/dev-passphrase\)/);
        expect(error.hint).toMatch(/PULUMI_CONFIG_PASSPHRASE_FILE=~\/\.config\/nixos-fleet\/prod-passphrase/);
    });

    it("another stack with a passphrase provider and no passphrase is refused, saying how to set one", () => {
        const root = project({ prod: `config:\n  nixos-fleet:hosts: [psi]\n${SALT}` });
        const error = passphraseProblem({ stack: "prod", projectRoot: root, env: {} });
        expect(error?.message).toBe("stack prod keeps its secrets with a passphrase, but neither PULUMI_CONFIG_PASSPHRASE nor PULUMI_CONFIG_PASSPHRASE_FILE is set");
        expect(error?.hint).toMatch(/PULUMI_CONFIG_PASSPHRASE_FILE=.*change-secrets-provider/);
        expect(passphraseProblem({ stack: "prod", projectRoot: root, env: { PULUMI_CONFIG_PASSPHRASE_FILE: "" } })).toBeDefined();
    });

    it("another stack given an empty passphrase (variable or file) is refused like one without", () => {
        const root = project({ prod: SALT, kms: "secretsprovider: awskms://alias/fleet\nencryptedkey: abc\n" });
        const empty = path.join(root, "empty-passphrase");
        fs.writeFileSync(empty, "\n");
        expect(passphraseProblem({ stack: "prod", projectRoot: root, env: { PULUMI_CONFIG_PASSPHRASE: "" } })?.message).toMatch(/stack prod is given an empty passphrase \(PULUMI_CONFIG_PASSPHRASE is empty\)/);
        expect(passphraseProblem({ stack: "prod", projectRoot: root, env: { PULUMI_CONFIG_PASSPHRASE_FILE: empty } })?.message).toMatch(/PULUMI_CONFIG_PASSPHRASE_FILE is an empty file/);
        expect(() => passphraseEnvFor("prod", root, { PULUMI_CONFIG_PASSPHRASE: " " })).toThrow(/empty passphrase/);
        // Not a passphrase stack: the variable does not matter.
        expect(passphraseProblem({ stack: "kms", projectRoot: root, env: { PULUMI_CONFIG_PASSPHRASE: "" } })).toBeUndefined();
    });

    it("another stack with its own passphrase, or another secrets provider, is fine", () => {
        const root = project({ prod: SALT, kms: "secretsprovider: awskms://alias/fleet\nencryptedkey: abc\n" });
        expect(passphraseEnvFor("prod", root, { PULUMI_CONFIG_PASSPHRASE_FILE: "/home/ops/.config/nixos-fleet/prod" })).toEqual({});
        expect(passphraseEnvFor("prod", root, { PULUMI_CONFIG_PASSPHRASE: "s3cret" })).toEqual({});
        expect(passphraseEnvFor("kms", root, {})).toEqual({});
    });

    it("knows the passphrase provider from the stack file, or from a self-managed backend's default", () => {
        expect(usesPassphraseProvider("secretsprovider: passphrase\n", {})).toBe(true);
        expect(usesPassphraseProvider(SALT, {})).toBe(true);
        expect(usesPassphraseProvider("secretsprovider: gcpkms://x\n", {})).toBe(false);
        expect(usesPassphraseProvider(undefined, { PULUMI_BACKEND_URL: "file:///srv/state" })).toBe(true);
        expect(usesPassphraseProvider("config: {}\n", { PULUMI_BACKEND_URL: "s3://bucket" })).toBe(true);
        expect(usesPassphraseProvider(undefined, { PULUMI_BACKEND_URL: "https://api.pulumi.com" })).toBe(false);
        expect(usesPassphraseProvider("{{{ not yaml", {})).toBe(false);
    });

    it("the program refuses before it evaluates or touches anything", async () => {
        const root = project({ prod: `config:\n  nixos-fleet:hosts: [psi]\n${SALT}` });
        const runner = new FakeRunner();
        const error = await fleetErrorOf(
            planFleet({ config: configSourceOf({ "nixos-fleet:hosts": '["psi"]' }), projectRoot: root, stackName: "prod", runner: runner.run, env: { PULUMI_CONFIG_PASSPHRASE_FILE: devPassphraseFile(root) } }),
        );
        expect(error.message).toMatch(/dev passphrase/);
        expect(runner.calls).toHaveLength(0);
    });
});
