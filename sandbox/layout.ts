// Where a sandbox fleet keeps its state. One directory per fleet (SANDBOX_DIR, default
// <project>/.sandbox), so tests can run their own fleet beside the demo one.
import * as path from "node:path";

/** The project root: sandbox/ sits directly below it. */
export const projectRoot = path.resolve(__dirname, "..");

/** The sandbox sources that start copies or runs (flake template, host scripts). */
export const sourceDir = __dirname;

export const DEFAULT_HOSTS = ["alpha", "beta", "gamma"] as const;

// Host names become hostnames, Nix attribute names and file names: keep them plain.
const HOST_NAME = /^[a-z][a-z0-9-]{0,62}$/;

export function checkHostName(name: string): string {
    if (!HOST_NAME.test(name)) {
        throw new Error(`invalid host name '${name}': use lowercase letters, digits and '-', starting with a letter`);
    }
    return name;
}

export function defaultSandboxDir(env: NodeJS.ProcessEnv = process.env): string {
    return path.resolve(env.SANDBOX_DIR ?? path.join(projectRoot, ".sandbox"));
}

export class SandboxLayout {
    constructor(readonly dir: string) {}

    get hostsDir(): string { return path.join(this.dir, "hosts"); }
    get keysDir(): string { return path.join(this.dir, "keys"); }
    get identityFile(): string { return path.join(this.keysDir, "deployer"); }
    get knownHostsFile(): string { return path.join(this.dir, "known_hosts"); }
    get sshConfigFile(): string { return path.join(this.dir, "ssh_config"); }
    get portsFile(): string { return path.join(this.dir, "ports.json"); }
    get flakeDir(): string { return path.join(this.dir, "flake"); }
    /** Tools every host sees read-only as /opt/sandbox/bin (the nixos-rebuild stand-in). */
    get toolsDir(): string { return path.join(this.dir, "bin"); }
    /** Copies of the sandbox layer (base/layer), one per content hash. */
    get layersDir(): string { return path.join(this.dir, "layers"); }

    hostDir(name: string): string { return path.join(this.hostsDir, checkHostName(name)); }
    knobFile(name: string): string { return path.join(this.flakeDir, "hosts", `${checkHostName(name)}.json`); }
    hostKeyFile(name: string): string { return path.join(this.hostDir(name), "ssh_host_ed25519_key"); }
    logFile(name: string): string { return path.join(this.hostDir(name), "host.log"); }
    /** The host's writable layer over the base root (its /etc, /root, /home, /var …). */
    upperDir(name: string): string { return path.join(this.hostDir(name), "upper"); }
    workDir(name: string): string { return path.join(this.hostDir(name), "work"); }
    /** Where boot.sh mounts the overlay (in its own mount namespace only). */
    rootfsDir(name: string): string { return path.join(this.hostDir(name), "rootfs"); }
    /** The host's /nix (store, profiles, boot default), outside the overlay. */
    nixDir(name: string): string { return path.join(this.hostDir(name), "nix"); }
}
