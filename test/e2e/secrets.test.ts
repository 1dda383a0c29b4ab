// Secrets end to end: a host field set with `config set --secret` and secret files on a host. The
// values never appear in the state directory (backups and history included) nor in what pulumi
// prints; the files land with their mode and owner outside the Nix store, a changed value is
// written again, a removed secret is deleted, and a file a reboot removed is written again.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { FleetProject } from "./helpers/fleetProject";
import { runProcess } from "../../src/process/runner";

let project: FleetProject;
/** Everything pulumi printed in this file's runs. */
let printed = "";

const FIELD_SECRET = "738194062517"; // RekeyLimit=… in sshOptions: harmless, and easy to find
const FILE_SECRET = "nf-file-secret-5b1e9d77";
const FILE_SECRET_2 = "nf-file-secret-changed-c04a61";
const POST_SECRET = "nf-post-secret-9e3f02aa";
/** A file's path set with --secret: encrypted in the state like a value. */
const SECRET_PATH = "/var/lib/nf-test/token-3d8a61";

async function pulumi(args: string[]): Promise<string> {
    const result = await project.pulumi(args);
    const output = result.stdout + result.stderr;
    printed += output;
    expect(result.code, output).toBe(0);
    return output;
}

/** `npm run <script> -- …` in the project, as an operator runs it. */
async function npm(script: string, args: string[]): Promise<string> {
    const result = await runProcess(["npm", "run", "--silent", script, "--", ...args, "--stack", project.stack], {
        cwd: project.projectDir,
        env: { ...project.env(), PULUMI_CONFIG_PASSPHRASE_FILE: undefined },
        timeoutMs: 300_000,
    });
    const output = result.stdout + result.stderr;
    printed += output;
    expect(result.code, output).toBe(0);
    return output;
}

const setSecret = (key: string, value: string) => pulumi(["config", "set", "--secret", "--path", key, value, "-s", project.stack]);
const setPlain = (key: string, value: string) => pulumi(["config", "set", "--plaintext", "--path", key, value, "-s", project.stack]);

/** Every file under dir (the state: stacks, .pulumi/backups, history). */
function filesUnder(dir: string): string[] {
    return readdirSync(dir).flatMap((entry) => {
        const path = join(dir, entry);
        return statSync(path).isDirectory() ? filesUnder(path) : [path];
    });
}

function stateFilesHolding(text: string): string[] {
    return filesUnder(project.stateDir).filter((file) => readFileSync(file).includes(text));
}

beforeAll(async () => {
    project = await FleetProject.create({ hosts: ["kappa"], portBase: 13200 });
    await setSecret("nixos-fleet:overrides.kappa.sshOptions[0]", `RekeyLimit=${FIELD_SECRET}`);
    await setSecret("nixos-fleet:secrets.kappa.dbpass.value", FILE_SECRET);
    await setPlain("nixos-fleet:secrets.kappa.dbpass.owner", "deployer");
    await setSecret("nixos-fleet:secrets.kappa.token.value", POST_SECRET);
    await setPlain("nixos-fleet:secrets.kappa.token.uploadAt", "post-activation");
    await setSecret("nixos-fleet:secrets.kappa.token.path", SECRET_PATH);
});

afterAll(async () => {
    await project?.dispose();
});

describe("secrets", () => {
    it("deploys a secret host field and secret files without their values in the state or the output", async () => {
        const up = await pulumi(["up", "--yes", "--skip-preview", "--non-interactive", "-s", project.stack]);
        expect(up).toMatch(/secret dbpass written to \/run\/keys\/dbpass \(0400 deployer:root\)/);
        // The file: mode 0400, owned by deployer, the value exactly; not in the host's store.
        expect(await project.onHost("kappa", ["stat", "-c", "%a %U", "/run/keys/dbpass"])).toBe("400 deployer");
        expect(await project.onHost("kappa", ["cat", "/run/keys/dbpass"])).toBe(FILE_SECRET);
        expect(await project.onHost("kappa", ["stat", "-c", "%a %U", SECRET_PATH])).toBe("400 root");
        expect(await project.onHost("kappa", ["sh", "-c", `grep -rlF ${FILE_SECRET} /nix/store || true`])).toBe("");
        // The state records the host field and the values as secrets.
        const state = (await project.hostStates()).kappa!;
        expect(JSON.stringify(state.sshOptions)).toMatch(/4dabf18193072939515e22adb298388d/);
        expect(JSON.stringify((state.secrets as Record<string, unknown>).dbpass)).toMatch(/4dabf18193072939515e22adb298388d/);
        // The operator commands still reach the host with its connection settings recorded as secrets.
        const generations = JSON.parse(await npm("generations", ["--json"])) as { host: string; error?: string; generations: unknown[] }[];
        expect(generations.map((host) => [host.host, host.error, host.generations.length > 0])).toEqual([["kappa", undefined, true]]);
    });

    it("shows which secrets change in the preview, never their values, and writes a changed value again", async () => {
        await setSecret("nixos-fleet:secrets.kappa.dbpass.value", FILE_SECRET_2);
        const preview = await pulumi(["preview", "--non-interactive", "--diff", "-s", project.stack]);
        // The engine shows no change inside a secret; the provider names the secret that changes.
        expect(preview).toMatch(/kappa: secret files to write: dbpass \(value changed\)/);
        expect(preview).not.toMatch(/token \(/);
        expect(preview).toMatch(/~ 1 to update/);
        // Deployed the operator's way: npm run deploy prints the plan and progress, no value.
        await npm("deploy", ["--yes"]);
        expect(await project.onHost("kappa", ["cat", "/run/keys/dbpass"])).toBe(FILE_SECRET_2);
    });

    it("deletes a removed secret, and a refresh notices a file a reboot removed so the next up writes it again", async () => {
        await pulumi(["config", "rm", "--path", "nixos-fleet:secrets.kappa.token", "-s", project.stack]);
        await pulumi(["config", "rm", "--path", "nixos-fleet:overrides.kappa", "-s", project.stack]);
        await pulumi(["up", "--yes", "--skip-preview", "--non-interactive", "-s", project.stack]);
        expect(await project.onHost("kappa", ["sh", "-c", `test -e ${SECRET_PATH} && echo present || echo gone`])).toBe("gone");

        await project.onHost("kappa", ["rm", "-f", "/run/keys/dbpass"]); // what a reboot does to /run
        const refresh = await pulumi(["refresh", "--yes", "--skip-preview", "--non-interactive", "-s", project.stack]);
        expect(refresh).toMatch(/secret file\(s\) missing on the host: dbpass \(\/run\/keys\/dbpass\)/);
        await pulumi(["up", "--yes", "--skip-preview", "--non-interactive", "-s", project.stack]);
        expect(await project.onHost("kappa", ["cat", "/run/keys/dbpass"])).toBe(FILE_SECRET_2);
    });

    it("never wrote a secret value in plaintext to the state directory (backups, history) or the output", () => {
        expect(filesUnder(project.stateDir).some((file) => file.includes("backups"))).toBe(true);
        expect(filesUnder(project.stateDir).some((file) => file.includes("history"))).toBe(true);
        for (const secret of [FIELD_SECRET, FILE_SECRET, FILE_SECRET_2, POST_SECRET, SECRET_PATH]) {
            expect(stateFilesHolding(secret), secret).toEqual([]);
            expect(printed.includes(secret), `pulumi printed ${secret}`).toBe(false);
        }
        // The check can fail: the state does hold the secret files' (non-secret) names and paths.
        expect(stateFilesHolding("/run/keys/dbpass").length).toBeGreaterThan(0);
    });
});
