// Activate phase, with nixos-rebuild's semantics: set the system profile (switch, boot), then run
// the new system's switch-to-configuration. If activation fails, the host is put back: profile to
// the previous generation, boot default and running system re-activated from the previous system,
// so the host never boots into the broken generation. Only then is the error reported.
import { FleetError, tail } from "../errors";
import type { SshConnection } from "../ssh/connection";
import { readHostState, SYSTEM_PROFILE, type HostState } from "./hostState";

export type Action = "switch" | "boot" | "test" | "dry-activate";

export const setsProfile = (action: Action): boolean => action === "switch" || action === "boot";
export const changesRunningSystem = (action: Action): boolean => action === "switch" || action === "test";

export interface ActivationResult {
    before: HostState;
    after: HostState;
    /** switch-to-configuration's output, for the log. */
    output: string;
}

export interface ActivateOptions {
    /** Make the profile point at this existing generation (rollback) instead of adding one. */
    switchToGeneration?: number;
    onOutput?: (chunk: string) => void;
    /** Bound on switch-to-configuration; a hung activation is treated as a failure. */
    timeoutMs?: number;
}

async function setProfile(connection: SshConnection, storePath: string, generation?: number): Promise<void> {
    const argv =
        generation === undefined
            ? ["nix-env", "-p", SYSTEM_PROFILE, "--set", storePath]
            : ["nix-env", "-p", SYSTEM_PROFILE, "--switch-generation", String(generation)];
    const result = await connection.run(argv, { asRoot: true });
    if (result.code !== 0) {
        throw new FleetError({
            phase: "activate",
            host: connection.target.name,
            message: "setting the system profile failed; nothing was changed",
            hint: "the deploy user needs root (or passwordless sudo) on the host",
            detail: tail(result.stderr),
        });
    }
}

async function switchTo(connection: SshConnection, storePath: string, action: Action, options: ActivateOptions = {}) {
    return connection.run([`${storePath}/bin/switch-to-configuration`, action], {
        asRoot: true,
        timeoutMs: options.timeoutMs,
        onStdout: options.onOutput,
        onStderr: options.onOutput,
    });
}

/** Puts the profile back to `before` (removing a first-ever generation) and re-activates. Returns what it did. */
export async function restorePrevious(connection: SshConnection, before: HostState, action: Action): Promise<string[]> {
    const done: string[] = [];
    const run = async (argv: string[], what: string) => {
        const result = await connection.run(argv, { asRoot: true });
        if (result.code !== 0) {
            throw new FleetError({
                phase: "rollback",
                host: connection.target.name,
                message: `restoring the previous system failed at: ${what}`,
                hint: `log in and run: nix-env -p ${SYSTEM_PROFILE} --rollback && /nix/var/nix/profiles/system/bin/switch-to-configuration switch`,
                detail: tail(result.stderr),
            });
        }
        done.push(what);
    };
    if (setsProfile(action)) {
        if (before.generation !== undefined) {
            await run(["nix-env", "-p", SYSTEM_PROFILE, "--switch-generation", String(before.generation)], `profile back to generation ${before.generation}`);
            if (before.profileStorePath) {
                await run([`${before.profileStorePath}/bin/switch-to-configuration`, "boot"], "boot default back to the previous generation");
            }
        } else {
            // The host had no system profile: take away the one this deploy created, and make the
            // system it ran before the boot default again (switch/boot installed the new one).
            await run(["sh", "-c", `rm -f ${SYSTEM_PROFILE} ${SYSTEM_PROFILE}-*-link`], "removed the new system profile");
            if (before.currentStorePath) {
                await run([`${before.currentStorePath}/bin/switch-to-configuration`, "boot"], "boot default back to the previously running system");
            }
        }
    }
    if (changesRunningSystem(action) && before.currentStorePath) {
        await run([`${before.currentStorePath}/bin/switch-to-configuration`, "test"], "re-activated the previously running system");
    }
    return done;
}

function verifyActivated(storePath: string, action: Action, after: HostState): string | undefined {
    if (setsProfile(action) && after.profileStorePath !== storePath) {
        return `the system profile points at ${after.profileStorePath ?? "nothing"}, not ${storePath}`;
    }
    if (changesRunningSystem(action) && after.currentStorePath !== storePath) {
        return `/run/current-system is ${after.currentStorePath ?? "missing"}, not ${storePath}`;
    }
    return undefined;
}

export async function activate(
    connection: SshConnection,
    storePath: string,
    action: Action,
    before: HostState,
    options: ActivateOptions = {},
): Promise<ActivationResult> {
    const host = connection.target.name;
    if (setsProfile(action)) await setProfile(connection, storePath, options.switchToGeneration);
    let failure: string | undefined;
    let output = "";
    try {
        const result = await switchTo(connection, storePath, action, options);
        output = `${result.stdout}${result.stderr}`;
        if (result.code !== 0) {
            failure = result.timedOut
                ? `switch-to-configuration ${action} did not finish in time`
                : `switch-to-configuration ${action} exited with ${result.code ?? result.signal}`;
        }
    } catch (error) {
        if (!(error instanceof FleetError) || error.phase !== "connect") throw error;
        // The connection dropped during activation (e.g. the new system restarted sshd or changed
        // the firewall). Try to put the host back over a new connection.
        failure = `the connection was lost during switch-to-configuration ${action} (${error.message})`;
        output = error.detail ?? "";
        connection.reset();
    }
    const after = failure ? before : await readHostState(connection);
    failure ??= action === "dry-activate" ? undefined : verifyActivated(storePath, action, after);
    if (!failure) return { before, after, output };

    if (action === "dry-activate") {
        throw new FleetError({
            phase: "activate",
            host,
            message: `${failure}; dry-activate changes nothing, so the host is as it was`,
            hint: "the output of the dry activation is above",
            detail: tail(output),
        });
    }
    let restored: string[];
    try {
        restored = await restorePrevious(connection, before, action);
    } catch (restoreError) {
        // Keep the activation's own output: it says why the deploy failed in the first place.
        if (restoreError instanceof FleetError) {
            throw new FleetError({
                ...restoreError.toJSON(),
                message: `${failure}; then ${restoreError.message}`,
                detail: [tail(output), restoreError.detail ?? ""].filter(Boolean).join("\n--- restore ---\n"),
            });
        }
        throw restoreError;
    }
    const back = before.generation !== undefined ? `generation ${before.generation}` : "the state before the deploy";
    throw new FleetError({
        phase: "activate",
        host,
        message: `${failure}; the host was restored to ${back}${restored.length ? ` (${restored.join(", ")})` : ""}`,
        hint: "fix the configuration and deploy again; the output of the activation is above",
        detail: tail(output),
    });
}
