import { describe, expect, it } from "vitest";
import { diagnoseSshFailure, sshError } from "../../../src/ssh/diagnose";
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
});
