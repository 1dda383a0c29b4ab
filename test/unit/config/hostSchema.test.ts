import { describe, expect, it } from "vitest";
import { hostFileSchema, hostPatchSchema, needsSudo } from "../../../src/config";
import { editDistance } from "../../../src/config/suggest";

const ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/** The messages of the issues for `fields` (with a valid address unless given). */
function messages(fields: Record<string, unknown>): string[] {
    const result = hostFileSchema.safeParse({ address: "web1", ...fields });
    return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
}

describe("hostFileSchema field rules", () => {
    it("accepts a full real-world host", () => {
        expect(
            messages({
                address: "2001:db8::10",
                port: 2222,
                user: "deploy",
                identityFile: "/home/ops/.ssh/id_ed25519",
                proxyJump: "ops@bastion.example.org:2200,jump2",
                hostKey: ED25519,
                knownHostsFile: "secrets/known_hosts",
                sshConfigFile: "ssh/config",
                sshOptions: ["ServerAliveInterval=15", "StrictHostKeyChecking=yes"],
                flake: "github:example/fleet?ref=main",
                attribute: "nixosConfigurations.psi",
                buildOn: "target",
                action: "dry-activate",
                substituteOnDestination: true,
                tags: ["web", "eu-1"],
                connectTimeout: 5,
                gc: true,
                healthChecks: { http: [{ url: "https://psi.example.org/health", status: 204 }], keepGoing: true },
            }),
        ).toEqual([]);
    });

    it.each([
        [{ hostKey: "ssh-ed25519 notbase64!" }, /expected a public host key/],
        [{ hostKey: "ssh-dss AAAAB3NzaC1kc3M=" }, /unsupported host key type "ssh-dss"/],
        [{ hostKey: "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" }, /is not a valid ssh-rsa key/],
        [{ proxyJump: "bastion:99999" }, /expected an ssh -J jump list/],
        [{ proxyJump: "-oProxyCommand=x" }, /expected an ssh -J jump list/],
        [{ proxyJump: "a b" }, /expected an ssh -J jump list/],
        [{ proxyJump: "[fe80::1%eth0]" }, /expected an ssh -J jump list/],
        [{ proxyJump: "ops@bastion,bastion:2200" }, /jump host "bastion" appears twice/],
        [{ proxyJump: "bastion,web1" }, /proxyJump lists the host itself \(web1\)/],
        [{ sshOptions: ["-oServerAliveInterval=15"] }, /starts with "-"/],
        [{ sshOptions: ["Port=2222"] }, /duplicates a host field/],
        [{ sshOptions: ["ProxyCommand=nc %h %p"] }, /runs a local command/],
        [{ sshOptions: ["Ciphers=aes128-ctr aes256-ctr"] }, /is not a single Key=Value ssh option/],
        [{ flake: ".#psi" }, /contains an attribute/],
        [{ flake: "" }, /expected a flake reference/],
        [{ identityFile: "-i" }, /would be read as an ssh option/],
        [{ user: "1bad" }, /expected a user name/],
        [{ buildOn: "remote" }, /expected "local" or "target", got "remote"/],
        [{ action: "reboot" }, /expected "switch", "boot", "test" or "dry-activate", got "reboot"/],
        [{ tags: ["Web"] }, /expected a tag/],
        [{ tags: ["web", "web"] }, /duplicate entry "web"/],
        [{ connectTimeout: 0 }, /expected a whole number of seconds from 1 to 3600, got 0/],
        [{ confirmTimeout: -1 }, /from 0 to 3600/],
        [{ keepGenerations: 0 }, /expected a number of generations of at least 1/],
        [{ deleteOlderThan: "30 days" }, /expected an age in days such as "30d"/],
        [{ healthChecks: { commands: [{ command: "systemctl is-active nginx" }] } }, /expected a command as a list of strings/],
        [{ healthChecks: { commands: [{ command: [] }] } }, /expected a command as a list of strings/],
        [{ healthChecks: { http: [{ url: "ftp://x" }] } }, /expected an http:\/\/ or https:\/\/ URL/],
        [{ healthChecks: { units: ["nginx service"] } }, /expected a systemd unit name/],
        [{ hooks: [{ name: "a", command: ["true"] }, { name: "a", command: ["false"] }] }, /duplicate hook name "a"/],
        [{ address: "" }, /expected a host name, IP address or ssh_config alias/],
        [{ address: "-oProxyCommand=x" }, /expected a host name, IP address or ssh_config alias/],
    ])("rejects %j", (fields, message) => {
        const found = messages(fields);
        expect(found).toHaveLength(1);
        expect(found[0]).toMatch(message);
    });

    it("rejects unknown keys (strict)", () => {
        expect(hostFileSchema.safeParse({ address: "a", extra: 1 }).success).toBe(false);
        expect(hostPatchSchema.safeParse({ extra: 1 }).success).toBe(false);
    });

    it("patches accept any subset with the same rules and no defaults", () => {
        expect(hostPatchSchema.parse({})).toEqual({});
        expect(hostPatchSchema.safeParse({ port: 70000 }).success).toBe(false);
    });

    it("deploys through sudo for non-root users", () => {
        expect(needsSudo({ user: "root" })).toBe(false);
        expect(needsSudo({ user: "deploy" })).toBe(true);
    });
});

describe("editDistance", () => {
    it("counts a swap of neighbours as one edit", () => {
        expect(editDistance("prot", "port")).toBe(1);
        expect(editDistance("", "abc")).toBe(3);
        expect(editDistance("kitten", "sitting")).toBe(3);
    });
});
