// Which config values are secret, and what the program does with that: host fields marked secret,
// secret files whose value is not encrypted refused, secret texts masked.
import { describe, expect, it } from "vitest";
import { hostSecretFiles } from "../../../src/program/fleet";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { isSecretAt, maskSecrets, programSecretPaths, secretConfigPaths, secretFileFields, secretHostFields, secretTexts, secretTopKeys } from "../../../src/program/secretConfig";
import { secretHostArgs } from "../../../src/resources/host";
import type { HostInputs } from "../../../src/provider/hostInputs";
import { FleetConfigError } from "../../../src/config";

const STACK_FILE = `config:
  nixos-fleet:hosts: [alpha, beta]
  nixos-fleet:overrides:
    alpha:
      port: 2222
      sshOptions:
        - secure: v1:abc
  nixos-fleet:secrets:
    alpha:
      dbpass:
        value:
          secure: v1:def
        owner: postgres
      plain:
        value: not-encrypted
`;

describe("secret config paths", () => {
    it("reads the secret keys the language host names", () => {
        expect(secretTopKeys('["nixos-fleet:overrides","aws:region","nixos-fleet:config:secrets"]', "nixos-fleet")).toEqual(["overrides", "secrets"]);
        expect(secretTopKeys(undefined, "nixos-fleet")).toEqual([]);
        expect(secretTopKeys("not json", "nixos-fleet")).toEqual([]);
    });

    it("narrows a secret key to its secure: leaves, and keeps a key without any secret as a whole", () => {
        const paths = secretConfigPaths({ namespace: "nixos-fleet", secretKeys: ["overrides", "secrets", "defaults"], stackFileText: STACK_FILE });
        expect(paths).toEqual([["overrides", "alpha", "sshOptions", 0], ["secrets", "alpha", "dbpass", "value"], ["defaults"]]);
        // defaults is secret as a whole here: every field may come from it.
        expect(secretHostFields(paths, "alpha", ["port", "sshOptions", "tags"])).toEqual(["port", "sshOptions", "tags"]);
        expect(secretHostFields(paths, "beta", ["port"])).toEqual(["port"]);
        const narrow = paths.slice(0, 2);
        expect(secretHostFields(narrow, "alpha", ["port", "sshOptions"])).toEqual(["sshOptions"]);
        expect(secretHostFields(narrow, "beta", ["port", "sshOptions"])).toEqual([]);
        expect(isSecretAt(narrow, ["secrets", "alpha", "plain", "value"])).toBe(false);
    });

    it("never marks fields that do not come from the config, even when a whole key is secret", () => {
        expect(secretHostFields([["overrides"]], "alpha", ["name", "storePath", "secrets", "port"])).toEqual(["port"]);
    });

    it("reads the stack file beside Pulumi.yaml; without the language host's list, its secure: leaves decide", () => {
        const root = fs.mkdtempSync(path.join(os.tmpdir(), "nf-secret-config-"));
        try {
            fs.writeFileSync(path.join(root, "Pulumi.prod.yaml"), STACK_FILE);
            expect(programSecretPaths("nixos-fleet", root, "prod", {})).toEqual([["overrides", "alpha", "sshOptions", 0], ["secrets", "alpha", "dbpass", "value"]]);
            expect(programSecretPaths("nixos-fleet", root, "prod", { PULUMI_CONFIG_SECRET_KEYS: '["nixos-fleet:secrets"]' })).toEqual([["secrets", "alpha", "dbpass", "value"]]);
            expect(programSecretPaths("nixos-fleet", root, "prod", { PULUMI_CONFIG_SECRET_KEYS: "[]" })).toEqual([]);
        } finally {
            fs.rmSync(root, { recursive: true, force: true });
        }
    });

    it("collects the secret texts of a config and masks them", () => {
        const raw = { overrides: { alpha: { port: 2222, sshOptions: ["RekeyLimit=738194062517"] } } };
        const texts = secretTexts([["overrides", "alpha", "sshOptions", 0]], raw);
        expect(texts).toEqual(["RekeyLimit=738194062517"]);
        expect(maskSecrets("expected one of …, got \"RekeyLimit=738194062517\"", texts)).toBe('expected one of …, got "[secret]"');
    });
});

describe("hostSecretFiles", () => {
    const secrets = { alpha: { dbpass: { value: "s", owner: "postgres", group: "root", mode: "0400", uploadAt: "pre-activation" as const } } };

    it("resolves each host's secret files (default path) when the values are secret", () => {
        const files = hostSecretFiles({ secrets }, ["alpha"], { secretPaths: [["secrets", "alpha", "dbpass", "value"]] });
        expect(files).toEqual({ alpha: { dbpass: { path: "/run/keys/dbpass", owner: "postgres", group: "root", mode: "0400", uploadAt: "pre-activation", value: "s" } } });
    });

    it("refuses a value stored in plaintext, and secrets for a host the stack does not deploy", () => {
        let error: unknown;
        try {
            hostSecretFiles({ secrets: { ...secrets, gamma: {} } }, ["alpha"], { secretPaths: [], file: "Pulumi.prod.yaml" });
        } catch (caught) {
            error = caught;
        }
        expect(error).toBeInstanceOf(FleetConfigError);
        const problems = (error as FleetConfigError).problems;
        expect(problems.map((problem) => problem.field).sort()).toEqual(["nixos-fleet:secrets.alpha.dbpass.value", "nixos-fleet:secrets.gamma"]);
        expect(problems.find((problem) => problem.field === "nixos-fleet:secrets.alpha.dbpass.value")!.hint).toMatch(/config set --secret --path 'nixos-fleet:secrets\.alpha\.dbpass\.value'/);
    });
});

describe("secret file settings set with --secret", () => {
    const file = { path: "/run/keys/hidden-name", owner: "svc", group: "root", mode: "0400", uploadAt: "pre-activation" as const, value: "v4lue" };
    const inputs = { name: "alpha", storePath: "/nix/store/x", secrets: { tok: file, plain: { ...file, path: "/run/keys/plain" } } } as unknown as HostInputs;
    const isSecret = (value: unknown) => (pulumi.Output.isInstance(value) ? pulumi.isSecret(value) : Promise.resolve(false));

    it("names the settings of each file that hold a secret (the value always does)", () => {
        const paths = [["secrets", "alpha", "tok", "path"], ["secrets", "alpha", "tok", "owner"], ["secrets", "alpha", "tok", "value"]];
        expect(secretFileFields(paths, "alpha", inputs.secrets!)).toEqual({ tok: ["path", "owner"] });
        expect(secretFileFields(paths, "beta", inputs.secrets!)).toEqual({});
        // A whole secret `secrets` key (no secure: leaf in the stack file) covers every setting.
        expect(secretFileFields([["secrets"]], "alpha", { tok: file }).tok).toEqual(["path", "owner", "group", "mode", "uploadAt"]);
    });

    it("passes a secret path or owner to the Host as a secret, so the state keeps it encrypted", async () => {
        const args = secretHostArgs(inputs, [], { tok: ["path", "owner"] }) as unknown as { secrets: Record<string, Record<string, unknown>> };
        const { tok, plain } = args.secrets;
        expect(await isSecret(tok!.path)).toBe(true);
        expect(await isSecret(tok!.owner)).toBe(true);
        expect(await isSecret(tok!.value)).toBe(true);
        expect(await isSecret(tok!.mode)).toBe(false);
        expect(await isSecret(plain!.path)).toBe(false);
        expect(await isSecret(plain!.value)).toBe(true);
    });
});
