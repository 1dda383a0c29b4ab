// The operator commands read the stack's config with their own `pulumi config` run (side by side
// with the Automation API's `pulumi version`), the way the Automation API's getAllConfig would.
import { describe, expect, it } from "vitest";
import { readAllConfig } from "../../../src/cli/stack";
import { FakeRunner } from "../helpers/fakeRunner";

const isConfig = (call: { argv: readonly string[] }) => call.argv[0] === "pulumi" && call.argv[1] === "config";

describe("readAllConfig", () => {
    it("runs pulumi config as getAllConfig does, in the project, with the workspace's variables", async () => {
        const runner = new FakeRunner().on(isConfig, { stdout: JSON.stringify({ "nixos-fleet:hosts": { value: "[\"psi\"]", secret: false } }) });
        const read = await readAllConfig("prod", "/srv/fleet", { PULUMI_CONFIG_PASSPHRASE_FILE: "/etc/fleet/pass" }, runner.run);
        expect(read).toEqual({ ok: true, values: { "nixos-fleet:hosts": { value: "[\"psi\"]", secret: false } } });
        const call = runner.calls.find(isConfig)!;
        expect(call.argv).toEqual(["pulumi", "config", "--show-secrets", "--json", "--stack", "prod", "--non-interactive"]);
        expect(call.options.cwd).toBe("/srv/fleet");
        expect(call.options.env).toEqual({ PULUMI_CONFIG_PASSPHRASE_FILE: "/etc/fleet/pass", PULUMI_AUTOMATION_API: "true" });
    });

    it("a failed run is an error carrying pulumi's words (the caller tells a missing stack from a bad file)", async () => {
        const runner = new FakeRunner().on(isConfig, { code: 255, stderr: "error: no stack named 'prod' found\n" });
        const read = await readAllConfig("prod", "/srv/fleet", {}, runner.run);
        expect(read.ok).toBe(false);
        expect(!read.ok && read.error.message).toMatch(/exited with 255:\nerror: no stack named 'prod' found/);
    });

    it("output that is not JSON is an error, not an empty config", async () => {
        const runner = new FakeRunner().on(isConfig, { stdout: "warning: something\n" });
        const read = await readAllConfig("prod", "/srv/fleet", {}, runner.run);
        expect(!read.ok && read.error.message).toMatch(/printed no JSON/);
    });

    it("output that is not JSON never puts what it printed (plaintext secrets) in the error", async () => {
        const stdout = '{"nixos-fleet:secrets": {"value": "{\\"psi\\":{\\"db\\":{\\"value\\":\\"hunter2-no stack named\\"}}}", "secret": true}';
        const runner = new FakeRunner().on(isConfig, { stdout });
        const read = await readAllConfig("prod", "/srv/fleet", {}, runner.run);
        expect(read.ok).toBe(false);
        expect(!read.ok && read.error.message).toMatch(/printed no JSON/);
        expect(!read.ok && read.error.message).not.toContain("hunter2");
        // openFleetStack tells a missing stack by pulumi's words in the message: a secret must not pass for them.
        expect(!read.ok && read.error.message).not.toMatch(/no stack named/);
    });
});
