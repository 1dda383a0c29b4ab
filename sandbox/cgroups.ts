// A sandbox host's processes are found by cgroup, not by name: boot.sh puts itself, systemd-nspawn
// and so every process of the container below the host's own cgroup in each hierarchy
// (`nixos-fleet-sandbox/<host>-<dir hash>`), and console commands join it too. So `stop` finds and
// ends all of them even after the deployer or nspawn crashed, and two fleets never mix.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

const CGROUP_FS = "/sys/fs/cgroup";
const GROUP = "nixos-fleet-sandbox";

/** The hierarchies systemd-nspawn uses: the unified one (cgroup v2), or v1's name=systemd plus the unified mirror. */
export function cgroupRoots(): string[] {
    if (fs.existsSync(path.join(CGROUP_FS, "cgroup.controllers"))) return [CGROUP_FS];
    const roots = [path.join(CGROUP_FS, "systemd"), path.join(CGROUP_FS, "unified")].filter((dir) =>
        fs.existsSync(path.join(dir, "cgroup.procs")),
    );
    if (roots.length === 0) throw new Error(`no cgroup hierarchy for systemd under ${CGROUP_FS}: systemd-nspawn cannot run here`);
    return roots;
}

/** The host's cgroup directory in each hierarchy; unique per host dir, readable name first. */
export function hostCgroups(hostDir: string, name: string): string[] {
    const id = `${name}-${createHash("sha256").update(hostDir).digest("hex").slice(0, 10)}`;
    return cgroupRoots().map((root) => path.join(root, GROUP, id));
}

function subdirs(dir: string): string[] {
    let entries: fs.Dirent[];
    try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
        return [];
    }
    return entries.filter((e) => e.isDirectory()).flatMap((e) => {
        const sub = path.join(dir, e.name);
        return [sub, ...subdirs(sub)];
    });
}

function readPids(dir: string): number[] {
    try {
        return fs.readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
    } catch {
        return [];
    }
}

/** Every process of the host (any hierarchy, any depth). */
export function cgroupPids(cgroups: readonly string[]): number[] {
    const pids = new Set<number>();
    for (const cg of cgroups) for (const dir of [cg, ...subdirs(cg)]) readPids(dir).forEach((pid) => pids.add(pid));
    return [...pids].sort((a, b) => a - b);
}

/** The pids in one sub-cgroup (e.g. "container/supervisor": systemd-nspawn itself). */
export function pidsIn(cgroups: readonly string[], sub: string): number[] {
    return [...new Set(cgroups.flatMap((cg) => readPids(path.join(cg, sub))))];
}

/** The container's pid 1 (seen from the machine), or undefined when the host is not running. */
export function containerInit(cgroups: readonly string[]): number | undefined {
    const init = pidsIn(cgroups, "container/payload/init.scope");
    if (init.length > 0) return init[0];
    // Early in boot, before systemd made init.scope, pid 1 is alone in payload/.
    const payload = pidsIn(cgroups, "container/payload");
    return payload.length > 0 ? Math.min(...payload) : undefined;
}

/** SIGKILLs every process of the host: cgroup.kill where the kernel has it, else pid by pid. */
export function killCgroups(cgroups: readonly string[]): void {
    for (const cg of cgroups) {
        const kill = path.join(cg, "cgroup.kill");
        if (fs.existsSync(kill)) {
            try {
                fs.writeFileSync(kill, "1");
            } catch {
                // fall through to the pids
            }
        }
    }
    for (const pid of cgroupPids(cgroups)) {
        try {
            process.kill(pid, "SIGKILL");
        } catch {
            // already gone
        }
    }
}

/** Removes the (empty) cgroup directories, deepest first. */
export function removeCgroups(cgroups: readonly string[]): void {
    for (const cg of cgroups) {
        for (const dir of [cg, ...subdirs(cg)].reverse()) {
            try {
                fs.rmdirSync(dir);
            } catch {
                // still busy or already gone: the next stop tries again
            }
        }
    }
}
