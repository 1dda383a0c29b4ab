// Reboots: whether a host needs one (its booted system's kernel, initrd or kernel modules differ
// from the deployed system's: NixOS's own test), whether its `reboot` policy asks for one, and the
// reboot itself: leave a marker in /run and read the boot id, ask systemd to reboot (the master
// connection drops: expected), wait within rebootTimeout for a NEW boot (bounded attempts with
// reconnects, never an open-ended wait), then check that /run/booted-system is the deployed system.
import { FleetError, tail } from "../errors";
import type { RebootPolicy } from "../config/hostFields";
import type { ProcessRunner } from "../process/runner";
import { SshConnection } from "../ssh/connection";
import type { Action } from "./activate";
import { isStorePath } from "../nix/flags";

/** The links of a NixOS system that only a reboot brings into effect. */
export const BOOT_LINKS = ["kernel", "initrd", "kernel-modules"] as const;
export type BootLink = (typeof BOOT_LINKS)[number];

/** Where each boot link of a system points; null when the system has no such link (a container's). */
export type BootFiles = Record<BootLink, string | null>;

export const BOOTED_SYSTEM = "/run/booted-system";

/** Where a reboot leaves its marker: /run is a tmpfs, so a new boot no longer has it. */
export const REBOOT_MARKER = "/run/nixos-fleet-reboot-pending";

// Fixed scripts: the system path comes as $1 (an argument, never spliced into the script).
const BOOT_FILES_SCRIPT = `for l in ${BOOT_LINKS.join(" ")}; do echo "$l=$(readlink "$1/$l" 2>/dev/null)"; done`;
const LOCAL_BOOT_FILES_SCRIPT = `[ -e "$1" ] || exit 3; ${BOOT_FILES_SCRIPT}`;

export function parseBootFiles(output: string): BootFiles {
    const files = Object.fromEntries(BOOT_LINKS.map((link) => [link, null])) as BootFiles;
    for (const line of output.split("\n")) {
        const eq = line.indexOf("=");
        const key = line.slice(0, eq) as BootLink;
        if (eq > 0 && BOOT_LINKS.includes(key)) files[key] = line.slice(eq + 1).trim() || null;
    }
    return files;
}

/** The links that differ between two systems, in BOOT_LINKS order. */
export function changedBootLinks(booted: BootFiles, next: BootFiles): BootLink[] {
    return BOOT_LINKS.filter((link) => booted[link] !== next[link]);
}

// Every system named ($1, $2, …) in one round trip, each after an "@system" line.
const BOOT_FILES_OF_SCRIPT = `for s in "$@"; do echo @system; for l in ${BOOT_LINKS.join(" ")}; do echo "$l=$(readlink "$s/$l" 2>/dev/null)"; done; done`;

/** Systems' boot files as the host sees them (BOOTED_SYSTEM for the booted one), in the order given; one command. */
export async function readBootFiles(connection: SshConnection, systems: readonly string[]): Promise<BootFiles[]> {
    const result = await connection.run(["sh", "-c", BOOT_FILES_OF_SCRIPT, "nixos-fleet-boot-files", ...systems], { timeoutMs: 30_000 });
    const sections = result.stdout.split(/^@system$/m).slice(1);
    if (result.code !== 0 || sections.length !== systems.length) {
        throw new FleetError({
            phase: "read",
            host: connection.target.name,
            message: `could not read the kernel, initrd and kernel-modules links of ${systems.join(" and ")}`,
            hint: "the login shell must be POSIX sh compatible",
            detail: tail(result.stderr),
        });
    }
    return sections.map(parseBootFiles);
}

/** What the state recorded of the host's booted system (`bootedStorePath`, at its last deploy or refresh). */
export interface RecordedBoot {
    /** /run/booted-system as last seen; null or absent when none was recorded. */
    bootedStorePath?: string | null;
    /** When the host was last seen (deploy or refresh). */
    lastSeenAt?: string | null;
    /** The recorded deployment, whose derivation may name the booted system's links. */
    storePath?: string;
    drvPath?: string;
}

/**
 * The booted system's boot files for a plan, without connecting: the booted system the state
 * recorded at the host's last deploy or refresh, read in this machine's store (or from its
 * derivation when that system is the recorded deployment). A reboot outside nixos-fleet since then
 * is not seen: the plan says which record it used, and `pulumi refresh` reads the host again.
 */
export async function recordedBootedSide(runner: ProcessRunner, recorded: RecordedBoot | undefined): Promise<{ known: true; files: BootFiles; source: string } | { known: false; reason: string }> {
    if (!recorded) return { known: false, reason: "the host has not been deployed by this stack yet; its booted system is read when it is" };
    // From the state (never checked by the input rules): only a store path reaches a command's arguments.
    const booted = isStorePath(recorded.bootedStorePath) ? recorded.bootedStorePath : undefined;
    if (!booted) return { known: false, reason: "no booted system is recorded for the host (`pulumi refresh` reads it)" };
    const fromStore = await localBootFiles(runner, booted).catch(() => undefined);
    const fromDerivation = !fromStore && booted === recorded.storePath && isStorePath(recorded.drvPath) ? await derivationBootFiles(runner, recorded.drvPath).catch(() => undefined) : undefined;
    const files = fromStore ?? fromDerivation;
    const short = booted.replace(/^\/nix\/store\/([0-9a-z]{8})[0-9a-z]{24}-/, "$1-");
    if (!files) return { known: false, reason: `the recorded booted system ${short} is not in this machine's store` };
    return { known: true, files, source: `booted ${short}${recorded.lastSeenAt ? ` as seen ${recorded.lastSeenAt}` : ""}` };
}

/** A system's boot files in this machine's store; undefined when the store path is not here (not built yet). */
export async function localBootFiles(runner: ProcessRunner, storePath: string): Promise<BootFiles | undefined> {
    const result = await runner(["sh", "-c", LOCAL_BOOT_FILES_SCRIPT, "nixos-fleet-boot-files", storePath], { timeoutMs: 30_000 });
    return result.code === 0 ? parseBootFiles(result.stdout) : undefined;
}

/**
 * A system's boot files before it is built, from its derivation: NixOS's top-level builder links
 * them with `ln -s <path> $out/kernel` (and initrd, kernel-modules). Undefined when the derivation
 * is not here or links none of them that way (then only the built system can tell).
 */
export async function derivationBootFiles(runner: ProcessRunner, drvPath: string): Promise<BootFiles | undefined> {
    const result = await runner(["cat", drvPath], { timeoutMs: 30_000 });
    if (result.code !== 0) return undefined;
    return bootFilesOfDerivation(result.stdout);
}

/** The `ln -s /nix/store/… $out/<link>` lines of a derivation's text (its ATerm, or any text holding the builder). */
export function bootFilesOfDerivation(text: string): BootFiles | undefined {
    const files = Object.fromEntries(BOOT_LINKS.map((link) => [link, null])) as BootFiles;
    let found = false;
    for (const match of text.matchAll(/ln -sf? (\/nix\/store\/[0-9a-z]{32}-[^\s"'\\;]+) \$out\/(kernel-modules|kernel|initrd)(?![\w.-])/g)) {
        files[match[2] as BootLink] = match[1]!;
        found = true;
    }
    return found ? files : undefined;
}

/** Why the host needs a reboot to run the deployed system; empty when it does not. */
export interface RebootNeed {
    /** The boot links that differ between the booted and the deployed system. */
    changed: BootLink[];
    /** action boot: the deployed system only runs once the host boots it. */
    bootPending: boolean;
}

export const rebootNeeded = (need: RebootNeed): boolean => need.changed.length > 0 || need.bootPending;

/** `kernel, initrd changed` / `action boot: the deployed system runs after a reboot`. */
export function describeNeed(need: RebootNeed): string {
    const parts: string[] = [];
    if (need.changed.length) parts.push(`${need.changed.join(", ")} changed`);
    if (need.bootPending) parts.push("action boot: the deployed system runs after a reboot");
    return parts.join("; ");
}

/**
 * What `pulumi refresh` records as `rebootNeeded` once it has read the host again: null when the
 * host booted the recorded system; else the boot links of the booted and the recorded system
 * compared in this machine's store; undefined (unknown, the field is left out) when either is not
 * there. A host that still boots what the state recorded keeps its recorded answer.
 */
export async function rebootNeedAfterRead(
    runner: ProcessRunner,
    before: { bootedStorePath?: string | null; storePath: string; rebootNeeded?: string | null },
    after: { bootedStorePath?: string | null; runningStorePath?: string | null; storePath: string; action?: string },
): Promise<string | null | undefined> {
    if (after.bootedStorePath === before.bootedStorePath && after.storePath === before.storePath) return before.rebootNeeded;
    if (!after.bootedStorePath) return undefined;
    const bootPending = after.action === "boot" && after.runningStorePath !== after.storePath;
    if (after.bootedStorePath === after.storePath && !bootPending) return null;
    const [booted, deployed] = await Promise.all([localBootFiles(runner, after.bootedStorePath).catch(() => undefined), localBootFiles(runner, after.storePath).catch(() => undefined)]);
    if (!booted || !deployed) return undefined;
    const need = { changed: changedBootLinks(booted, deployed), bootPending };
    return rebootNeeded(need) ? describeNeed(need) : null;
}

/**
 * Whether the deploy reboots the host: `auto` when a reboot is needed, `always` also after any
 * deploy that changed the host. A `test` or `dry-activate` deploy never reboots: the host would
 * boot its profile, not the tested system.
 */
export function shouldReboot(policy: RebootPolicy, action: Action, need: RebootNeed, activated: boolean): boolean {
    if (action === "test" || action === "dry-activate" || policy === "never") return false;
    if (rebootNeeded(need)) return true;
    return policy === "always" && activated;
}

/** Why a host that needs a reboot was not rebooted: its policy, or an action that never reboots. */
export function notRebootedBecause(policy: RebootPolicy, action: Action): string {
    if (action === "test" || action === "dry-activate") return `action ${action} never reboots (the host would boot its system profile, not the tested system)`;
    return `reboot is ${policy}`;
}

export interface RebootOptions {
    /** Seconds from issuing the reboot until the new boot must answer over ssh. */
    timeoutSeconds: number;
    /** The system the host must boot (the deployed one). */
    storePath: string;
    log?: (message: string) => void;
    /** Injectable so unit tests need not wait. */
    sleep?: (ms: number) => Promise<void>;
    /** Aborted when the run is cancelled (Ctrl-C): the wait ends, the reboot's outcome unknown. */
    cancelled?: AbortSignal;
}

export interface RebootResult {
    /** The boot id before and after (/proc/sys/kernel/random/boot_id). */
    previousBootId: string | null;
    bootId: string | null;
    /** When the reboot was issued (ISO time). */
    at: string;
    /** Seconds from issuing the reboot until the new boot answered. */
    waitedSeconds: number;
    bootedStorePath: string;
}

/** What is known of a reboot that did not end well: when it was issued, the boot id before, how long we waited. */
export interface RebootAttempt {
    at: string;
    previousBootId: string | null;
    waitedSeconds: number;
    /** Set when a new boot answered (it booted another system): its boot id and booted system. */
    bootId?: string | null;
    bootedStorePath?: string | null;
}

/** A reboot that failed or whose outcome is unknown, with what is known of it (for the state). */
export class RebootFailed extends FleetError {
    constructor(
        error: FleetError,
        readonly attempt: RebootAttempt,
    ) {
        super(error.toJSON());
    }
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const PREPARE_SCRIPT = `cat /proc/sys/kernel/random/boot_id && : > ${REBOOT_MARKER}`;
// After the boot: boot id, whether our marker is still there, the booted system, systemd's state.
const PROBE_SCRIPT = [
    `echo "bootId=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"`,
    `if [ -e ${REBOOT_MARKER} ]; then echo marker=present; else echo marker=absent; fi`,
    `echo "booted=$(readlink -f ${BOOTED_SYSTEM} 2>/dev/null)"`,
    `echo "state=$(systemctl is-system-running 2>/dev/null)"`,
].join("; ");

interface Probe {
    bootId: string | null;
    marker: boolean;
    booted: string | null;
    state: string;
}

function parseProbe(output: string): Probe {
    const values = new Map(output.split("\n").flatMap((line) => (line.includes("=") ? [[line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1).trim()] as const] : [])));
    return { bootId: values.get("bootId") || null, marker: values.get("marker") === "present", booted: values.get("booted") || null, state: values.get("state") ?? "" };
}

/** systemd is still starting units: the new boot is not ready for secrets and health checks yet. */
const STILL_BOOTING = new Set(["initializing", "starting"]);

const seconds = (ms: number) => Math.round(ms / 100) / 10;

/**
 * Reboots the host and waits for its new boot, within options.timeoutSeconds. The connection is
 * open again (on the new boot) when it returns. Throws a FleetError (phase reboot) when the host
 * refuses to reboot, does not come back in time (outcome unknown), or booted another system.
 */
export async function rebootHost(connection: SshConnection, options: RebootOptions): Promise<RebootResult> {
    const host = connection.target.name;
    const log = options.log ?? (() => undefined);
    const sleep = options.sleep ?? defaultSleep;
    const prepared = await connection.run(["sh", "-c", PREPARE_SCRIPT, "nixos-fleet-reboot-prepare"], { asRoot: true, timeoutMs: 30_000 });
    if (prepared.code !== 0) {
        throw new FleetError({
            phase: "reboot",
            host,
            message: `could not prepare the reboot (read the boot id, leave a marker in /run): exit status ${prepared.code}`,
            hint: /sudo: /.test(prepared.stderr) ? `rebooting needs root: give ${connection.target.user} passwordless sudo, or connect as root` : "see the output above",
            detail: tail(prepared.stderr),
        });
    }
    const previousBootId = prepared.stdout.trim().split("\n")[0] || null;
    const at = new Date().toISOString();
    const started = Date.now();
    log(`rebooting (boot id ${previousBootId ?? "unknown"}); waiting up to ${options.timeoutSeconds}s for the new boot`);
    // The connection drops while systemd shuts down: expected, not an error.
    const issued = await connection.run(["systemctl", "reboot"], { asRoot: true, timeoutMs: 15_000 }).catch(() => undefined);
    // Refused because the host is already going down (a reboot or shutdown under way): not a
    // refusal to say "not booted" about; wait for the new boot like any other.
    const goingDown = async () => (await connection.run(["systemctl", "is-system-running"], { timeoutMs: 15_000 }).catch(() => undefined))?.stdout.trim() === "stopping";
    if (issued && issued.code !== 0 && issued.code !== 255 && !issued.timedOut && issued.code !== null && (await goingDown())) {
        log(`systemctl reboot exited with ${issued.code}, but the host is already shutting down: waiting for its new boot`);
    } else if (issued && issued.code !== 0 && issued.code !== 255 && !issued.timedOut && issued.code !== null) {
        throw new FleetError({
            phase: "reboot",
            host,
            message: `the host refused to reboot: systemctl reboot exited with ${issued.code}; the deployed system is active, but not booted`,
            hint: /sudo: /.test(issued.stderr) ? `rebooting needs root: give ${connection.target.user} passwordless sudo, or connect as root` : "reboot the host by hand, then `pulumi refresh`",
            detail: tail(issued.stderr),
        });
    }
    await connection.close().catch(() => undefined);
    connection.reset();

    const deadline = options.timeoutSeconds * 1000;
    let waited = 0;
    let last = "the host did not answer yet";
    for (;;) {
        const elapsed = Math.max(waited, Date.now() - started);
        if (options.cancelled?.aborted) {
            throw new RebootFailed(new FleetError({
                phase: "reboot",
                host,
                outcome: "unknown",
                message: `outcome unknown: the run was cancelled (Ctrl-C) while waiting for the host to come back from the reboot (waited ${seconds(elapsed)}s of ${options.timeoutSeconds}s; last: ${last}); the deployed system was activated before the reboot`,
                hint: "once the host answers, `npm run pulumi -- refresh` records what it booted, and the next `pulumi up` (or `npm run deploy`) checks it and writes its secrets again",
            }), { at, previousBootId, waitedSeconds: seconds(elapsed) });
        }
        if (elapsed >= deadline) {
            const attempt = { at, previousBootId, waitedSeconds: seconds(elapsed) };
            throw new RebootFailed(new FleetError({
                phase: "reboot",
                host,
                outcome: "unknown",
                message: `outcome unknown: the host did not come back from the reboot within ${options.timeoutSeconds}s (waited ${seconds(elapsed)}s; last: ${last}); the deployed system was activated before the reboot`,
                hint: "check the host's console; once it answers, `npm run pulumi -- refresh` records what it booted, and the next `pulumi up` (or `npm run deploy`) checks it and writes its secrets again",
            }), attempt);
        }
        const delay = Math.min(2000, deadline - elapsed);
        await sleep(delay);
        if (options.cancelled?.aborted) continue;
        waited += delay;
        connection.reset();
        // No attempt runs past the deadline (a host that drops packets while it reboots makes each
        // one last until its timeout); one second at least, for the handshake.
        const remaining = Math.max(1000, deadline - Math.max(waited, Date.now() - started));
        let probe: Probe;
        try {
            await connection.open({ timeoutMs: remaining });
            const result = await connection.run(["sh", "-c", PROBE_SCRIPT, "nixos-fleet-reboot-probe"], { timeoutMs: Math.min(15_000, Math.max(1000, deadline - Math.max(waited, Date.now() - started))) });
            if (result.code !== 0) {
                last = `probe exited with ${result.code}`;
                continue;
            }
            probe = parseProbe(result.stdout);
        } catch (error) {
            last = error instanceof Error ? error.message.split("\n")[0]! : String(error);
            continue;
        }
        const newBoot = !probe.marker || (previousBootId !== null && probe.bootId !== null && probe.bootId !== previousBootId);
        if (!newBoot) {
            last = "the old boot still answers (shutting down)";
            continue;
        }
        if (STILL_BOOTING.has(probe.state)) {
            last = `the new boot is still starting (systemctl is-system-running: ${probe.state})`;
            continue;
        }
        const waitedSeconds = seconds(Math.max(waited, Date.now() - started));
        log(`rebooted: the new boot answered after ${waitedSeconds}s (boot id ${probe.bootId ?? "unknown"})`);
        if (probe.booted !== options.storePath) {
            throw new RebootFailed(new FleetError({
                phase: "reboot",
                host,
                message: `the host booted ${probe.booted ?? "no system"} (/run/booted-system), not the deployed ${options.storePath}: the boot loader did not take it`,
                hint: "check the boot loader on the host (its entries and default, `bootctl status` or the GRUB config), then deploy again",
            }), { at, previousBootId, waitedSeconds, bootId: probe.bootId, bootedStorePath: probe.booted });
        }
        return { previousBootId, bootId: probe.bootId, at, waitedSeconds, bootedStorePath: probe.booted };
    }
}
