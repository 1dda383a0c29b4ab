import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ALLOWED_SSH_OPTIONS, allowedOptionNames, sshOptionRefusal } from "../../../src/ssh/optionPolicy";

describe("sshOptionRefusal: the allow-list", () => {
    it.each([
        "ServerAliveInterval=15",
        "serveraliveinterval=15",
        "ServerAliveCountMax=10",
        "TCPKeepAlive=no",
        "Compression=yes",
        "ConnectionAttempts=3",
        "Ciphers=aes256-gcm@openssh.com,chacha20-poly1305@openssh.com",
        "KexAlgorithms=+diffie-hellman-group14-sha256",
        "HostKeyAlgorithms=ssh-ed25519",
        "PubkeyAcceptedAlgorithms=-ssh-rsa",
        "MACs=^hmac-sha2-256",
        "IPQoS=throughput",
        "AddressFamily=inet6",
        "RekeyLimit=1G",
        "LogLevel=ERROR",
        "StrictHostKeyChecking=yes",
        "StrictHostKeyChecking=YES",
        "BatchMode=yes",
    ])("accepts %s", (option) => {
        expect(sshOptionRefusal(option)).toBeUndefined();
    });
});

describe("sshOptionRefusal: whatever runs commands, trusts keys or checks less", () => {
    it.each([
        // The probes of issue 11, and their case variants.
        ["ProxyCommand=touch${IFS}/tmp/x", /runs a local command/, /proxyJump/],
        ["proxycommand=touch${IFS}/tmp/x", /runs a local command/, /proxyJump/],
        ["PROXYCOMMAND=x", /runs a local command/, /proxyJump/],
        ["ProxyCommand==touch", /runs a local command/, /proxyJump/],
        ["ProxyUseFdpass=yes", /ProxyCommand/, /proxyJump/],
        ["PermitLocalCommand=yes", /allows LocalCommand/, /hooks/],
        ["LocalCommand=touch${IFS}/tmp/y", /runs a local command/, /hooks/],
        ["RemoteCommand=sh", /replaces the commands/, /hooks/],
        ["KnownHostsCommand=/bin/echo", /runs a local command/, /hostKey/],
        ["StrictHostKeyChecking=false", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["StrictHostKeyChecking=FALSE", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["StrictHostKeyChecking=accept-new", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["stricthostkeychecking=no", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["StrictHostKeyChecking=off", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["StrictHostKeyChecking=ask", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["StrictHostKeyChecking=0", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["StrictHostKeyChecking=yes,no", /weaken host-key checking/, /insecureSkipHostKeyCheck: true/],
        ["GlobalKnownHostsFile=/tmp/keys", /trusted host keys/, /hostKey or point knownHostsFile/],
        ["UserKnownHostsFile=/dev/null", /replaces the known host keys/, /knownHostsFile/],
        ["CheckHostIP=no", /host keys are checked/, /hostKey/],
        ["CheckHostIP=yes", /host keys are checked/, /hostKey/],
        ["HostKeyAlias=other", /known_hosts entry/, /hostKey/],
        ["UpdateHostKeys=yes", /add trusted host keys/, /hostKey/],
        ["VerifyHostKeyDNS=yes", /from DNS/, /hostKey/],
        ["NoHostAuthenticationForLocalhost=yes", /off for localhost/, /insecureSkipHostKeyCheck/],
        ["BatchMode=no", /prompt/, /BatchMode=yes/],
        ["Match=exec", /ssh_config block/, /sshConfigFile/],
        ["Host=*", /ssh_config block/, /sshConfigFile/],
        ["Include=/etc/passwd", /reads another ssh_config/, /sshConfigFile/],
        ["ControlPath=/tmp/x", /master connection/, /control socket/],
        ["ControlMaster=auto", /master connection/, /control socket/],
        ["ControlPersist=yes", /master connection/, /control socket/],
        ["IdentityAgent=/tmp/agent", /another agent/, /identityFile/],
        ["PKCS11Provider=/tmp/evil.so", /shared library/, /identityFile/],
        ["SecurityKeyProvider=/tmp/evil.so", /shared library/, /identityFile/],
        ["ForwardAgent=yes", /ssh-agent/, /remove/],
        ["SendEnv=PULUMI_*", /environment variables/, /remove/],
        ["SetEnv=A=1", /environment variables/, /remove/],
        ["Port=2222", /duplicates a host field/, /"port"/],
        ["HostName=evil.example.org", /duplicates a host field/, /"address"/],
        ["ProxyJump=evil", /duplicates a host field/, /"proxyJump"/],
        ["IdentityFile=/tmp/k", /duplicates a host field/, /"identityFile"/],
        ["ConnectTimeout=5", /duplicates a host field/, /"connectTimeout"/],
    ])("refuses %s", (option, message, hint) => {
        const refusal = sshOptionRefusal(option);
        expect(refusal?.message).toMatch(message);
        expect(refusal?.hint).toMatch(hint);
    });

    // ssh reads "Key Value", "Key = Value", tabs and -o prefixes as well: the refusal names the option anyway.
    it.each([
        "ProxyCommand touch /tmp/x",
        "ProxyCommand = touch /tmp/x",
        "ProxyCommand\ttouch",
        "-oProxyCommand=touch",
        "-o ProxyCommand=touch",
        "-oproxycommand=touch",
        '"ProxyCommand"=touch',
        "  ProxyCommand=touch",
        "LocalCommand=touch /tmp/y",
    ])("refuses %j with the specific reason", (option) => {
        expect(sshOptionRefusal(option)?.message).toMatch(/runs a local command/);
    });

    it.each([
        "StrictHostKeyChecking=yes ",
        "StrictHostKeyChecking=yes\n",
        "StrictHostKeyChecking yes",
        "StrictHostKeyChecking=ｙｅｓ",
    ])("refuses %j, even though the value reads as yes (only the exact Key=Value form passes)", (option) => {
        expect(sshOptionRefusal(option)?.message).toMatch(/weaken host-key checking/);
    });

    it.each([
        "Proxy\u0421ommand=x", // Cyrillic С
        "Proxy\u200bCommand=x", // zero-width space
        "ProxyCommand\uff1dx", // fullwidth =
        "ServerAliveInterval=15\u0000ProxyCommand=x",
        "ServerAliveInterval=15\nProxyCommand=x",
        "ServerAliveInterval=15 ProxyCommand=x",
        "ServerAliveInterval=",
        "=yes",
        "",
        "ServerAliveInterval",
        "ServerAliveInterval:15",
        "Tunnel=yes",
        "LocalForward=8080",
        "DynamicForward=1080",
        "EnableEscapeCommandline=yes",
        "ServerAliveInterval=-1",
        "ServerAliveInterval=1e3",
        "ServerAliveInterval=99999999999",
        "ConnectionAttempts=0",
        "Ciphers=aes128-ctr;touch",
        "Ciphers=$(touch)",
        "KexAlgorithms=%d",
        "IPQoS=lowdelay throughput",
        "LogLevel=DEBUG4",
    ])("refuses %j", (option) => {
        expect(sshOptionRefusal(option)).toBeDefined();
    });

    it("is fast on a very long option", () => {
        const started = Date.now();
        expect(sshOptionRefusal(`Ciphers=${"a,".repeat(500_000)}a`)).toBeUndefined();
        expect(sshOptionRefusal(`ProxyCommand ${"x".repeat(1_000_000)}`)).toBeDefined();
        expect(sshOptionRefusal(`${"A".repeat(1_000_000)}=1`)).toBeDefined();
        expect(Date.now() - started).toBeLessThan(500);
    });
});

describe("docs/host-config.md", () => {
    it("lists every allowed option", () => {
        const docs = readFileSync(join(__dirname, "../../../docs/host-config.md"), "utf8");
        for (const name of allowedOptionNames()) expect(docs).toContain(`\`${name}\``);
        expect(Object.keys(ALLOWED_SSH_OPTIONS).length).toBeGreaterThan(10);
    });
});
