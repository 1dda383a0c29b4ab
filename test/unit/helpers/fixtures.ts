// Small builders shared by the unit tests: store paths, SSH targets, private runtime directories.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect } from "vitest";
import { FleetError } from "../../../src/errors";
import type { SshTarget } from "../../../src/ssh/target";
import type { DeployRequest } from "../../../src/deploy/deployHost";

const NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz";

/** A syntactically valid store path whose hash is derived from `name` (same name → same path). */
export function storePath(name: string): string {
    const digest = createHash("sha256").update(name).digest();
    let hash = "";
    for (let i = 0; i < 32; i++) hash += NIX_BASE32[digest[i]! % 32];
    return `/nix/store/${hash}-${name}`;
}

export const drvPath = (name: string): string => `${storePath(name)}.drv`;

/** Directories made by tempDir in this test file (vitest evaluates this module once per file). */
const tempDirs: string[] = [];

/**
 * A fresh directory <os temp dir>/<prefix>XXXXXX, removed with everything in it after the test
 * file's last test. Unit tests make their scratch directories only through this, so a run leaves
 * nothing behind in /tmp. Keep prefixes short: ssh ControlPath sockets end up inside some of them.
 */
export function tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    tempDirs.push(dir);
    return dir;
}

afterAll(() => {
    for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function runtimeDir(): string {
    return tempDir("nf-unit-");
}

export function target(overrides: Partial<SshTarget> = {}): SshTarget {
    return { name: "alpha", address: "alpha.example.org", user: "root", ...overrides };
}

/** Awaits `promise`, expects it to reject with a FleetError and returns that error. */
export async function fleetErrorOf(promise: Promise<unknown>): Promise<FleetError> {
    try {
        await promise;
    } catch (error) {
        expect(error).toBeInstanceOf(FleetError);
        return error as FleetError;
    }
    throw new Error("expected a FleetError, but nothing was thrown");
}

/** Same for synchronous code. */
export function fleetErrorOfSync(action: () => unknown): FleetError {
    try {
        action();
    } catch (error) {
        expect(error).toBeInstanceOf(FleetError);
        return error as FleetError;
    }
    throw new Error("expected a FleetError, but nothing was thrown");
}

/**
 * Timeout for tests that run the real host scripts under sh (with stand-in commands): they start
 * real processes, which take more than a second when the machine is busy (tests run two files at
 * a time, beside end-to-end fleets). Tests that only use fakes keep 1 s, which catches real waits.
 */
export const REAL_SCRIPT_TIMEOUT = 15_000;

/** A deploy of alpha's third system by the user "deploy" (the unit tests' usual request); overrides win. */
export function deployRequest(overrides: Partial<DeployRequest> = {}): DeployRequest {
    return {
        target: target({ user: "deploy" }),
        storePath: storePath("nixos-system-alpha-3"),
        drvPath: drvPath("nixos-system-alpha-3"),
        flake: "/srv/infra",
        attribute: "nixosConfigurations.alpha",
        buildOn: "local",
        action: "switch",
        substituteOnDestination: false,
        ...overrides,
    };
}

