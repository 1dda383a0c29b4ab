// The files that make a host's writable layer a particular host, written into <host>/upper before
// it boots (never while its overlay is mounted): hostname, machine id, its ssh host key and
// listening address (127.0.0.1:<port> only), and the deployer's key for a freshly installed host.
// Everything shared by all hosts (users, sudo, Nix, units) is in the base root and base/layer.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { SandboxLayout } from "./layout";

export const DEPLOYER_USER = "deployer";

/** PATH of every SSH session (sshd SetEnv), of sudo and of console: NixOS's system path first. */
export const HOST_PATH = "/run/current-system/sw/bin:/opt/sandbox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function writeFile(file: string, content: string, mode: number, owner?: { uid: number; gid: number }): void {
    fs.writeFileSync(file, content, { mode });
    fs.chmodSync(file, mode);
    if (owner) fs.chownSync(file, owner.uid, owner.gid);
}

/**
 * Makes `rel` (and its parents) in the upper layer with the owner and mode the base root gives
 * them: an upper directory's attributes win over the base's in the merged view.
 */
function upperDir(upper: string, base: string, rel: string, fallback = { mode: 0o755, uid: 0, gid: 0 }): string {
    let current = upper;
    for (const part of rel.split("/").filter(Boolean)) {
        current = path.join(current, part);
        const inBase = path.join(base, path.relative(upper, current));
        const stat = fs.existsSync(inBase) ? fs.statSync(inBase) : undefined;
        if (!fs.existsSync(current)) fs.mkdirSync(current);
        const want = stat ? { mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid } : fallback;
        fs.chmodSync(current, want.mode);
        fs.chownSync(current, want.uid, want.gid);
    }
    return current;
}

export function hostSshdConfig(name: string, port: number): string {
    return [
        `# nixos-fleet sandbox host ${name}: written by sandbox start, do not edit`,
        `AddressFamily inet`,
        `ListenAddress 127.0.0.1:${port}`,
        ``,
    ].join("\n");
}

/** Writes what makes the upper layer this host; keeps its store, keys and home contents. */
export function writeHostFiles(layout: SandboxLayout, base: string, name: string, port: number, deployerPublicKey: string): void {
    const upper = layout.upperDir(name);
    for (const dir of [upper, layout.workDir(name), layout.rootfsDir(name), layout.nixDir(name)]) fs.mkdirSync(dir, { recursive: true });

    const etc = upperDir(upper, base, "etc");
    writeFile(path.join(etc, "hostname"), `${name}\n`, 0o644);
    writeFile(path.join(etc, "hosts"), `127.0.0.1 localhost ${name}\n::1 localhost\n`, 0o644);
    const machineId = path.join(etc, "machine-id");
    if (!fs.existsSync(machineId) || fs.readFileSync(machineId, "utf8").trim() === "") {
        writeFile(machineId, `${crypto.randomBytes(16).toString("hex")}\n`, 0o444);
    }
    const ssh = upperDir(upper, base, "etc/ssh");
    const hostKey = layout.hostKeyFile(name);
    writeFile(path.join(ssh, "ssh_host_ed25519_key"), fs.readFileSync(hostKey, "utf8"), 0o600);
    writeFile(path.join(ssh, "ssh_host_ed25519_key.pub"), fs.readFileSync(`${hostKey}.pub`, "utf8"), 0o644);
    writeFile(path.join(upperDir(upper, base, "etc/ssh/sshd_config.d"), "00-host.conf"), hostSshdConfig(name, port), 0o644);

    // A freshly installed host trusts the deployer's key; later its activations manage the keys.
    for (const home of ["root", `home/${DEPLOYER_USER}`]) {
        const homeDir = upperDir(upper, base, home);
        const { uid, gid } = fs.statSync(homeDir);
        const sshDir = upperDir(upper, base, `${home}/.ssh`, { mode: 0o700, uid, gid });
        const keys = path.join(sshDir, "authorized_keys");
        if (!fs.existsSync(keys)) writeFile(keys, deployerPublicKey.trim() + "\n", 0o600, { uid, gid });
        const profile = path.join(homeDir, ".profile");
        // Debian's /etc/profile resets PATH for login shells; keep the host's.
        if (!fs.existsSync(profile)) writeFile(profile, `export PATH=${HOST_PATH}\n[ -f ~/.bashrc ] && . ~/.bashrc\n`, 0o644, { uid, gid });
    }
}
