// The sandbox fleet end to end with the real tools: systemd-nspawn hosts booting real systemd,
// with their own stores, nix copy over ssh-ng, activation through the nixos-rebuild stand-in and
// the toy switch-to-configuration (units restarted, failed units, the activation lock), knobs,
// reboots, clean stop.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunResult, runChecked, runProcess } from "../../src/process/runner";
import { SandboxFleet } from "../../sandbox/fleet";
import { ephemeralPortRange } from "../../sandbox/ports";
import { hostCgroups, pidsIn } from "../../sandbox/cgroups";
import { expectNothingLeft } from "./helpers/sandboxLeftovers";

const HOSTS = ["alpha", "beta", "gamma"] as const;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sandbox-e2e-"));
const fleet = new SandboxFleet({ dir, portBase: 24200 });
// Nix on the deployer side: offline, no writes to ~/.cache.
const nixEnv = { XDG_CACHE_HOME: path.join(dir, "cache"), NIX_CONFIG: "experimental-features = nix-command flakes\nsubstituters =" };

const toplevelAttr = (host: string): string => `${fleet.flakeRef}#nixosConfigurations.${host}.config.system.build.toplevel`;

async function nix(args: string[], extraEnv: Record<string, string> = {}): Promise<RunResult> {
    return runChecked(runProcess, ["nix", ...args], { env: { ...nixEnv, ...extraEnv } });
}

async function buildToplevel(host: string): Promise<string> {
    const result = await nix(["build", "--no-link", "--json", toplevelAttr(host)]);
    return (JSON.parse(result.stdout) as Array<{ outputs: { out: string } }>)[0]!.outputs.out;
}

async function closure(storePath: string): Promise<string[]> {
    const result = await runChecked(runProcess, ["nix-store", "-q", "--requisites", storePath], { env: nixEnv });
    return result.stdout.trim().split("\n").sort();
}

/** nix copy to a host as root (or deployer), options explicit as a deployer would pass them. */
function copyTo(host: string, paths: string[], user = "root"): Promise<RunResult> {
    return runProcess(["nix", "copy", "-v", "--no-check-sigs", "--to", fleet.storeUri(user), ...paths], {
        env: { ...nixEnv, NIX_SSHOPTS: fleet.nixSshOpts(host) },
    });
}

async function onHost(host: string, argv: string[], user?: string): Promise<string> {
    const result = await fleet.exec(host, argv, { user });
    if (result.code !== 0) throw new Error(`${host}: ${argv.join(" ")} exited ${result.code}: ${result.stderr}`);
    return result.stdout.trim();
}

async function hostStore(host: string): Promise<string[]> {
    return (await onHost(host, ["nix", "path-info", "--all"])).split("\n").filter(Boolean).sort();
}

/** The flake source as the product sends it: copied into the host's store, used as path:<store path>. */
async function sendFlake(host: string): Promise<string> {
    const meta = JSON.parse((await nix(["flake", "metadata", "--json", fleet.flakeRef])).stdout) as { path: string };
    const copied = await copyTo(host, [meta.path]);
    expect(copied.code, copied.stderr).toBe(0);
    return `path:${meta.path}`;
}

const toplevels: Record<string, string> = {};

/** The page the host's web.service serves on its own 127.0.0.1 port. */
async function webPage(host: string): Promise<string> {
    const response = await fetch(`http://127.0.0.1:${fleet.host(host).webPort}/`);
    return response.text();
}

beforeAll(async () => {
    await fleet.start(HOSTS);
}, 120_000);

afterAll(async () => {
    await fleet.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
});

describe("sandbox fleet", () => {
    it("starts hosts reachable with the generated ssh_config, each with its own hostname and empty store", async () => {
        for (const host of HOSTS) {
            const ssh = await runProcess(["ssh", "-F", fleet.host(host).sshConfigFile, host, "hostname"]);
            expect(ssh.code, ssh.stderr).toBe(0);
            expect(ssh.stdout.trim()).toBe(host);
            expect(await hostStore(host)).toEqual([]);
        }
        const ports = HOSTS.map((h) => fleet.host(h).port);
        expect(new Set(ports).size).toBe(3);
        // From the base, and below the kernel's ephemeral range (where outgoing connections could take them).
        const { low } = ephemeralPortRange();
        for (const port of HOSTS.flatMap((h) => [fleet.host(h).port, fleet.host(h).webPort])) {
            expect(port).toBeGreaterThanOrEqual(fleet.portBase);
            expect(port).toBeLessThan(low);
        }
        const knownHosts = fs.readFileSync(fleet.host("alpha").knownHostsFile, "utf8");
        expect(knownHosts).toContain(`[127.0.0.1]:${fleet.host("alpha").port} ssh-ed25519 `);
    });

    it("hosts boot real systemd: sshd and nix-daemon are units, sshd listens only on the host's 127.0.0.1 port", async () => {
        const ids = new Set<string>();
        for (const host of HOSTS) {
            expect(await onHost(host, ["systemctl", "is-system-running", "--wait"])).toBe("running");
            expect(await onHost(host, ["systemctl", "is-active", "ssh.service", "nix-daemon.service"])).toBe("active\nactive");
            expect(await onHost(host, ["readlink", "/proc/1/exe"])).toMatch(/systemd$/);
            const listen = (await onHost(host, ["sshd", "-T"])).split("\n").filter((l) => l.startsWith("listenaddress "));
            expect(listen).toEqual([`listenaddress 127.0.0.1:${fleet.host(host).port}`]);
            ids.add(await onHost(host, ["cat", "/etc/machine-id"]));
        }
        expect(ids.size).toBe(HOSTS.length);
    });

    it("evaluates all hosts' toplevels without building", async () => {
        const result = await nix(["eval", "--json", `${fleet.flakeRef}#nixosConfigurations`, "--apply",
            "cs: builtins.mapAttrs (n: c: c.config.system.build.toplevel.outPath) cs"]);
        const outPaths = JSON.parse(result.stdout) as Record<string, string>;
        expect(Object.keys(outPaths).sort()).toEqual([...HOSTS]);
        for (const out of Object.values(outPaths)) expect(fs.existsSync(out)).toBe(false);
    });

    it("copies a locally built closure to each host; each store holds only its own paths", async () => {
        const closures: Record<string, string[]> = {};
        for (const host of HOSTS) {
            toplevels[host] = await buildToplevel(host);
            closures[host] = await closure(toplevels[host]!);
            expect(closures[host]!.length).toBeGreaterThanOrEqual(4);
        }
        // Shared paths (base, tools, activation script) and per-host ones (etc, toplevel).
        const shared = closures.alpha!.filter((p) => closures.beta!.includes(p));
        expect(shared.length).toBeGreaterThanOrEqual(3);
        expect(closures.alpha!.length - shared.length).toBeGreaterThanOrEqual(2);

        for (const host of HOSTS) {
            const copied = await copyTo(host, [toplevels[host]!]);
            expect(copied.code, copied.stderr).toBe(0);
            expect(await hostStore(host)).toEqual(closures[host]);
        }
        // Nothing travels a second time.
        const again = await copyTo("alpha", [toplevels.alpha!]);
        expect(again.code, again.stderr).toBe(0);
        expect(again.stderr).not.toMatch(/copying path/);
        expect(await hostStore("alpha")).toEqual(closures.alpha);
    });

    it("activates with the nixos-rebuild stand-in: generation 1, /run/current-system, activation log", async () => {
        const flake = await sendFlake("alpha");
        const rebuild = await fleet.exec("alpha", ["nixos-rebuild", "switch", "--flake", `${flake}#alpha`]);
        expect(rebuild.code, rebuild.stderr).toBe(0);
        expect(await onHost("alpha", ["nix-env", "-p", "/nix/var/nix/profiles/system", "--list-generations"])).toMatch(/^\s*1\s.*\(current\)$/);
        expect(await onHost("alpha", ["readlink", "/run/current-system"])).toBe(toplevels.alpha);
        expect(await onHost("alpha", ["readlink", "/nix/var/nix/sandbox/boot-default"])).toBe(toplevels.alpha);
        expect(await onHost("alpha", ["nixos-version"])).toBe("24.05.1-sandbox");
        const log = (await onHost("alpha", ["cat", "/nix/var/nix/sandbox/activations.log"])).split("\n");
        expect(log).toHaveLength(1);
        expect(JSON.parse(log[0]!)).toMatchObject({ action: "switch", toplevel: toplevels.alpha });
        // Root still gets in: the configuration's authorized key is the deployer's.
        expect(await onHost("alpha", ["true"])).toBe("");
    });

    it("lets the non-root deployer user copy (trusted by the host's nix-daemon) and deploy with sudo", async () => {
        expect(await onHost("beta", ["id", "-un"], "deployer")).toBe("deployer");
        const copied = await copyTo("beta", [toplevels.beta!], "deployer");
        expect(copied.code, copied.stderr).toBe(0);
        const flake = await sendFlake("beta");
        const rebuild = await fleet.exec("beta", ["sudo", "-n", "nixos-rebuild", "switch", "--flake", `${flake}#beta`], { user: "deployer" });
        expect(rebuild.code, rebuild.stderr).toBe(0);
        expect(await onHost("beta", ["readlink", "/run/current-system"])).toBe(toplevels.beta);
    });

    it("fail=true: activation exits non-zero after re-pointing /run/current-system", async () => {
        await fleet.set("alpha", { version: 2, fail: true });
        const broken = await buildToplevel("alpha");
        expect(broken).not.toBe(toplevels.alpha);
        const copied = await copyTo("alpha", [broken]);
        expect(copied.code, copied.stderr).toBe(0);
        expect((copied.stderr.match(/copying path/g) ?? []).length).toBe(2); // etc + toplevel only

        const flake = await sendFlake("alpha");
        const rebuild = await fleet.exec("alpha", ["nixos-rebuild", "switch", "--flake", `${flake}#alpha`]);
        expect(rebuild.code).not.toBe(0);
        expect(rebuild.stderr).toContain("fail=true");
        expect(await onHost("alpha", ["readlink", "/run/current-system"])).toBe(broken);
        expect(await onHost("alpha", ["readlink", "/nix/var/nix/profiles/system"])).toBe("system-2-link");
    });

    it("test + reboot: the host comes back on its boot default generation", async () => {
        const flake = await sendFlake("gamma");
        expect((await fleet.exec("gamma", ["nixos-rebuild", "switch", "--flake", `${flake}#gamma`])).code).toBe(0);
        await fleet.set("gamma", { version: 2 });
        const next = await sendFlake("gamma");
        const tested = await fleet.exec("gamma", ["nixos-rebuild", "test", "--flake", `${next}#gamma`]);
        expect(tested.code, tested.stderr).toBe(0);
        expect(await onHost("gamma", ["nixos-version"])).toBe("24.05.2-sandbox");
        await fleet.reboot("gamma");
        expect(await onHost("gamma", ["readlink", "/run/booted-system"])).toBe(toplevels.gamma);
        expect(await onHost("gamma", ["readlink", "/run/current-system"])).toBe(toplevels.gamma);
        const status = (await fleet.status()).find((s) => s.name === "gamma")!;
        expect(status).toMatchObject({ running: true, currentSystem: toplevels.gamma, bootDefault: toplevels.gamma, profileGeneration: "system-1-link" });
    });

    it("breakSsh=true locks the deployer out; the console still reaches the host", async () => {
        await fleet.set("gamma", { version: 3, breakSsh: true });
        const flake = await sendFlake("gamma");
        expect((await fleet.exec("gamma", ["nixos-rebuild", "switch", "--flake", `${flake}#gamma`])).code).toBe(0);
        const locked = await fleet.exec("gamma", ["true"]);
        expect(locked.code).toBe(255);
        expect(locked.stderr).toContain("Permission denied (publickey)");
        const viaConsole = await fleet.console("gamma", ["hostname"]);
        expect(viaConsole.stdout.trim()).toBe("gamma");
    });

    it("a switch restarts the units whose files changed: web serves the new version from a new process", async () => {
        const before = await onHost("beta", ["systemctl", "show", "--value", "-p", "MainPID", "web.service"]);
        expect(await webPage("beta")).toContain("NixOS 24.05.1-sandbox");
        await fleet.set("beta", { version: 2 });
        const flake = await sendFlake("beta");
        const rebuild = await fleet.exec("beta", ["nixos-rebuild", "switch", "--flake", `${flake}#beta`]);
        expect(rebuild.code, rebuild.stderr).toBe(0);
        expect(rebuild.stdout).toContain("restarting the following units: web.service");
        expect(await webPage("beta")).toContain("NixOS 24.05.2-sandbox");
        const after = await onHost("beta", ["systemctl", "show", "--value", "-p", "MainPID", "web.service"]);
        expect(after).not.toBe(before);
        expect(await onHost("beta", ["systemctl", "status", "--no-pager", "web"])).toMatch(/Active: active \(running\)/);
    });

    it("failedUnits=web: units fail for real, switch exits 4 naming them, status lists them", async () => {
        await fleet.set("beta", { version: 3, failedUnits: ["web", "worker"] });
        const flake = await sendFlake("beta");
        const rebuild = await fleet.exec("beta", ["nixos-rebuild", "switch", "--flake", `${flake}#beta`]);
        expect(rebuild.code).toBe(4);
        expect(rebuild.stderr).toContain("the following units failed: web.service worker.service");
        // Switched all the same (exit 4 = "switched, units failed").
        expect(await onHost("beta", ["nixos-version"])).toBe("24.05.3-sandbox");
        const status = (await fleet.status()).find((h) => h.name === "beta")!;
        expect(status.failedUnits.sort()).toEqual(["web.service", "worker.service"]);

        await fleet.set("beta", { version: 4, failedUnits: [] });
        const fixed = await fleet.exec("beta", ["nixos-rebuild", "switch", "--flake", `${await sendFlake("beta")}#beta`]);
        expect(fixed.code, fixed.stderr).toBe(0);
        expect(fixed.stdout).toContain("stopping the following units: worker.service");
        expect((await fleet.status()).find((h) => h.name === "beta")!.failedUnits).toEqual([]);
        expect(await webPage("beta")).toContain("NixOS 24.05.4-sandbox");
    });

    it("the activation lock: a switch while another holds it aborts and changes nothing", async () => {
        const running = await onHost("beta", ["readlink", "/run/current-system"]);
        const held = await fleet.console("beta", ["sh", "-c", "mkdir -p /run/nixos; flock --close /run/nixos/switch-to-configuration.lock sleep 60 >/dev/null 2>&1 &"]);
        expect(held.code, held.stderr).toBe(0);
        await fleet.set("beta", { version: 5 });
        const next = await buildToplevel("beta");
        expect((await copyTo("beta", [next])).code).toBe(0);
        const blocked = await fleet.exec("beta", [`${next}/bin/switch-to-configuration`, "test"]);
        expect(blocked.code).toBe(1);
        expect(blocked.stderr).toContain("Could not acquire lock /run/nixos/switch-to-configuration.lock");
        expect(await onHost("beta", ["readlink", "/run/current-system"])).toBe(running);
        expect((await fleet.console("beta", ["pkill", "-f", "flock --close /run/nixos/switch-to-configuration.lock"])).code).toBe(0);
        const free = await fleet.exec("beta", [`${next}/bin/switch-to-configuration`, "test"]);
        expect(free.code, free.stderr).toBe(0);
        expect(await onHost("beta", ["readlink", "/run/current-system"])).toBe(next);
    });

    it("systemctl reboot inside a host: a new boot on the boot default, /run empty, units started from it", async () => {
        const bootDefault = await onHost("beta", ["readlink", "-f", "/nix/var/nix/sandbox/boot-default"]);
        expect(await onHost("beta", ["readlink", "/run/current-system"])).not.toBe(bootDefault); // `test` above
        await onHost("beta", ["touch", "/run/marker"]);
        const bootId = await onHost("beta", ["cat", "/proc/sys/kernel/random/boot_id"]);
        const init = fleet.initPid("beta")!;
        await fleet.exec("beta", ["systemctl", "reboot"]);
        await fleet.waitForReboot("beta", init);
        expect(await onHost("beta", ["cat", "/proc/sys/kernel/random/boot_id"])).not.toBe(bootId);
        expect((await fleet.exec("beta", ["test", "-e", "/run/marker"])).code).toBe(1);
        expect(await onHost("beta", ["readlink", "/run/booted-system"])).toBe(bootDefault);
        expect(await onHost("beta", ["readlink", "/run/current-system"])).toBe(bootDefault);
        expect(await onHost("beta", ["systemctl", "is-system-running", "--wait"])).toBe("running");
        expect(await webPage("beta")).toContain("NixOS 24.05.4-sandbox");
    });

    it("a host whose systemd-nspawn was killed is orphaned: status says so, start and reboot boot it afresh", async () => {
        const cgroups = hostCgroups(path.join(dir, "hosts", "alpha"), "alpha");
        for (const pid of [...pidsIn(cgroups, "launcher"), ...pidsIn(cgroups, "container/supervisor")]) process.kill(pid, "SIGKILL");
        await new Promise((resolve) => setTimeout(resolve, 300));
        const orphaned = (await fleet.status()).find((h) => h.name === "alpha")!;
        expect(orphaned).toMatchObject({ running: true, supervised: false });
        const init = fleet.initPid("alpha")!;
        await fleet.reboot("alpha");
        expect(fleet.initPid("alpha")).not.toBe(init);
        expect((await fleet.status()).find((h) => h.name === "alpha")).toMatchObject({ running: true, supervised: true });
        expect(await onHost("alpha", ["systemctl", "is-system-running", "--wait"])).toBe("running");
    });

    it("stop leaves no processes, cgroups, listeners or mounts behind", async () => {
        const ports = HOSTS.flatMap((h) => [fleet.host(h).port, fleet.host(h).webPort]);
        await fleet.stop();
        await expectNothingLeft(dir, ports);
        expect((await fleet.status()).every((s) => !s.running)).toBe(true);
    });
});
