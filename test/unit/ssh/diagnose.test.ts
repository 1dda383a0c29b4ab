import { describe, expect, it } from "vitest";
import { diagnoseSshFailure, isLastingConnectError, sshError } from "../../../src/ssh/diagnose";
import { target } from "../helpers/fixtures";

const alpha = target({ user: "deploy", address: "10.0.0.7", port: 2201, connectTimeout: 4 });
const diagnose = (stderr: string, timedOut = false) => diagnoseSshFailure(alpha, stderr, timedOut);

// Messages as OpenSSH 9 prints them.
const HOST_KEY_CHANGED = [
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!",
    "Host key for nixos-fleet-alpha has changed and you have requested strict checking.",
    "Host key verification failed.",
].join("\r\n");
const UNKNOWN_HOST_KEY =
    "No ED25519 host key is known for [10.0.0.7]:2201 and you have requested strict checking.\r\nHost key verification failed.\r\n";

describe("diagnoseSshFailure", () => {
    it("connection refused: says so and where (user@address:port)", () => {
        const d = diagnose("ssh: connect to host 10.0.0.7 port 2201: Connection refused\r\n");
        expect(d.message).toBe("deploy@10.0.0.7:2201 refused the connection");
        expect(d.hint).toMatch(/sshd listens/);
    });

    it("permission denied: points at the key and the user's authorized_keys", () => {
        const d = diagnose("deploy@10.0.0.7: Permission denied (publickey).\r\n");
        expect(d.message).toContain("refused the login (permission denied)");
        expect(d.hint).toContain("deploy's authorized_keys");
    });

    it("changed host key: warns about a mismatch, not about an unknown key", () => {
        const d = diagnose(HOST_KEY_CHANGED);
        expect(d.message).toBe("the host key of deploy@10.0.0.7:2201 does not match the pinned/known key");
        expect(d.hint).toMatch(/reinstalled/);
    });

    it("unknown host key under strict checking: says the key is not known", () => {
        const d = diagnose(UNKNOWN_HOST_KEY);
        expect(d.message).toBe("the host key of deploy@10.0.0.7:2201 is not known, so the connection was refused");
        expect(d.hint).toMatch(/hostKey/);
    });

    it("timeout (ssh's message or our kill) and banner exchange: did not answer within connectTimeout", () => {
        const expected = "deploy@10.0.0.7:2201 did not answer within 4s";
        expect(diagnose("ssh: connect to host 10.0.0.7 port 2201: Connection timed out\r\n").message).toBe(expected);
        expect(diagnose("Connection timed out during banner exchange\r\n").message).toBe(expected);
        expect(diagnose("", true).message).toBe(expected);
    });

    it("timeout message uses the 10 second default without connectTimeout", () => {
        expect(diagnoseSshFailure(target(), "", true).message).toContain("within 10s");
    });

    it("name resolution failure: names the address", () => {
        const d = diagnose("ssh: Could not resolve hostname 10.0.0.7: Name or service not known\r\n");
        expect(d.message).toBe("cannot resolve 10.0.0.7");
        expect(d.hint).toMatch(/address/);
    });

    it("sudo wanting a password: names the user and the NixOS setting", () => {
        const d = diagnose("sudo: a password is required\n");
        expect(d.message).toBe("deploy cannot run sudo without a password on 10.0.0.7");
        expect(d.hint).toContain("wheelNeedsPassword");
        expect(diagnose("deploy is not in the sudoers file.  This incident will be reported.\n").message).toContain("cannot run sudo");
    });

    it("anything else: a generic message with the ssh -v hint", () => {
        const d = diagnose("kex_exchange_identification: read: Connection reset by peer\r\n");
        expect(d.message).toBe("ssh to deploy@10.0.0.7:2201 failed");
        expect(d.hint).toMatch(/ssh -v/);
    });

    it("leaves the port out of the location when none is set", () => {
        expect(diagnoseSshFailure(target(), "Connection refused", false).message).toBe("root@alpha.example.org refused the connection");
    });
});

describe("sshError", () => {
    it("is a connect-phase FleetError for the host with ssh's output as detail", () => {
        const error = sshError(alpha, UNKNOWN_HOST_KEY, false);
        expect(error.phase).toBe("connect");
        expect(error.host).toBe("alpha");
        expect(error.message).toContain("is not known");
        expect(error.detail).toBe(UNKNOWN_HOST_KEY);
    });

    it("is lasting (a later attempt would fail the same way) for a host key that is not the known one and a refused login, not for a host that is away", () => {
        const lasting = (stderr: string, timedOut = false) => isLastingConnectError(sshError(alpha, stderr, timedOut));
        expect(lasting(UNKNOWN_HOST_KEY)).toBe(true);
        expect(lasting(HOST_KEY_CHANGED)).toBe(true);
        expect(lasting("deploy@10.0.0.7: Permission denied (publickey).\r\n")).toBe(true);
        expect(lasting("ssh: connect to host 10.0.0.7 port 2201: Connection refused\r\n")).toBe(false);
        expect(lasting("ssh: connect to host 10.0.0.7 port 2201: Connection timed out\r\n")).toBe(false);
        expect(lasting("", true)).toBe(false);
        expect(lasting("ssh: Could not resolve hostname nowhere: Name or service not known\r\n")).toBe(false);
        expect(lasting("Connection closed by 10.0.0.7 port 2201\r\n")).toBe(false);
        const jump = target({ address: "10.0.0.7", proxyJump: "ops@bastion.example.org:2200" });
        const jumpKey = "No ED25519 host key is known for [bastion.example.org]:2200 and you have requested strict checking.\r\nHost key verification failed.\r\n";
        expect(isLastingConnectError(sshError(jump, jumpKey, false))).toBe(true);
        expect(isLastingConnectError(sshError(jump, "ssh: connect to host bastion.example.org port 2200: Connection refused\r\n", false))).toBe(false);
    });
});

describe("diagnoseSshFailure through jump hosts", () => {
    const PROXY_GONE = "kex_exchange_identification: Connection closed by remote host\r\nConnection closed by UNKNOWN port 65535\r\n";
    const behind = (overrides: Parameters<typeof target>[0] = {}) => target({ address: "10.0.0.7", proxyJump: "ops@bastion.example.org:2200,jump2", ...overrides });

    it("an unknown jump-host key names the jump host, not the host", () => {
        const stderr = "No ED25519 host key is known for [bastion.example.org]:2200 and you have requested strict checking.\r\nHost key verification failed.\r\n" + PROXY_GONE;
        const d = diagnoseSshFailure(behind(), stderr, false);
        expect(d.message).toBe("the host key of jump host ops@bastion.example.org:2200 is not known, so the connection to root@10.0.0.7 was refused");
        expect(d.hint).toMatch(/known_hosts/);
        expect(d.hint).toMatch(/insecureSkipHostKeyCheck never covers jump hosts/);
    });

    it("points at the host's knownHostsFile when it has one", () => {
        const stderr = "No ED25519 host key is known for jump2 and you have requested strict checking.\r\nHost key verification failed.\r\n" + PROXY_GONE;
        const d = diagnoseSshFailure(behind({ knownHostsFile: "/srv/fleet/known_hosts" }), stderr, false);
        expect(d.message).toMatch(/^the host key of jump host jump2 is not known/);
        expect(d.hint).toContain("/srv/fleet/known_hosts");
    });

    it("a jump host that is an ssh_config alias: known by the proxy ending after the failure", () => {
        const stderr = "No ED25519 host key is known for [127.0.0.1]:26201 and you have requested strict checking.\r\nHost key verification failed.\r\n" + PROXY_GONE;
        const d = diagnoseSshFailure(target({ address: "zeta", proxyJump: "delta" }), stderr, false);
        expect(d.message).toBe("the host key of jump host delta ([127.0.0.1]:26201) is not known, so the connection to root@zeta was refused");
    });

    it("a changed jump-host key, a refused, unresolvable or silent jump host, and a refused login name the jump host", () => {
        const t = behind();
        expect(diagnoseSshFailure(t, "Host key for jump2 has changed and you have requested strict checking.\r\nHost key verification failed.\r\n" + PROXY_GONE, false).message).toBe(
            "the host key of jump host jump2 does not match the known key",
        );
        expect(diagnoseSshFailure(t, "ssh: connect to host bastion.example.org port 2200: Connection refused\r\n" + PROXY_GONE, false).message).toMatch(
            /^jump host ops@bastion.example.org:2200 refused the connection/,
        );
        expect(diagnoseSshFailure(t, "ssh: Could not resolve hostname jump2: Name or service not known\r\n" + PROXY_GONE, false).message).toBe("cannot resolve jump host jump2");
        expect(diagnoseSshFailure(t, "ssh: connect to host jump2 port 22: Connection timed out\r\n" + PROXY_GONE, false).message).toMatch(/^jump host jump2 did not answer/);
        expect(diagnoseSshFailure(t, "ops@bastion.example.org: Permission denied (publickey).\r\n" + PROXY_GONE, false).message).toMatch(
            /^jump host ops@bastion.example.org:2200 refused the login/,
        );
    });

    it("the host's own failures behind a jump host are still the host's", () => {
        const t = behind({ hostKey: "ssh-ed25519 AAAA" });
        const pinned = "No ED25519 host key is known for nixos-fleet-alpha and you have requested strict checking.\r\nHost key verification failed.\r\n";
        expect(diagnoseSshFailure(t, pinned, false).message).toBe("the host key of root@10.0.0.7 is not known, so the connection was refused");
        const own = "No ED25519 host key is known for 10.0.0.7 and you have requested strict checking.\r\nHost key verification failed.\r\n";
        expect(diagnoseSshFailure(behind(), own, false).message).toMatch(/^the host key of root@10.0.0.7 is not known/);
        // An alias host whose own key is unknown: no proxy ended after the message.
        const alias = "No ED25519 host key is known for [127.0.0.1]:26203 and you have requested strict checking.\r\nHost key verification failed.\r\n";
        expect(diagnoseSshFailure(target({ address: "zeta", proxyJump: "delta" }), alias, false).message).toMatch(/^the host key of root@zeta is not known/);
    });

    it("with several alias hops and an unknown name, lists them", () => {
        const stderr = "No ED25519 host key is known for [127.0.0.1]:26201 and you have requested strict checking.\r\n" + PROXY_GONE;
        const d = diagnoseSshFailure(target({ address: "zeta", proxyJump: "delta,epsilon" }), stderr, false);
        expect(d.message).toMatch(/^the host key of jump host \[127.0.0.1\]:26201, one of delta, epsilon is not known/);
    });
});

describe("ssh's complaints about a config file", () => {
    it("keep the file and line but not the quoted text (an sshConfigFile pointing at a passphrase or /etc/shadow)", () => {
        const stderr =
            '/home/ops/.config/prod-passphrase line 1: no argument after keyword "hunter2-passphrase"\r\n' +
            "/etc/shadow line 1: Bad configuration option: root:$y$j9T$abcdefhash:19000:0:99999:7:::\n" +
            "/etc/shadow: terminating, 1 bad configuration options\n";
        const detail = sshError(alpha, stderr, false).detail ?? "";
        expect(detail).not.toMatch(/hunter2|\$y\$j9T/);
        expect(detail).toMatch(/^\/home\/ops\/\.config\/prod-passphrase line 1: not a valid ssh_config line/m);
        expect(detail).toMatch(/^\/etc\/shadow line 1: not a valid ssh_config line/m);
        expect(detail).toMatch(/^\/etc\/shadow: terminating/m);
    });
});
