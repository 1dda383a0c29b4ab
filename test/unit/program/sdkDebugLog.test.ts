import { describe, expect, it, vi } from "vitest";
import {
    dropSdkProgressDebug,
    isSdkProgressDebug,
    pulumiAncestorArgs,
    pulumiArgsWantDebug,
    sdkDebugWanted,
    type ProcessReader,
} from "../../../src/program/sdkDebugLog";

/** A process table: pid → [ppid, argv]. */
function table(rows: Record<number, [number, string[]]>): ProcessReader {
    return (pid) => (rows[pid] ? { ppid: rows[pid][0], argv: rows[pid][1] } : undefined);
}

const chain = (pulumiArgs: string[]) =>
    table({
        30: [20, ["/work/.tools/bin/pulumi-language-nodejs", "-root", "/p", "127.0.0.1:4000"]],
        20: [10, ["/work/.tools/bin/pulumi", ...pulumiArgs]],
        10: [1, ["bash"]],
    });

describe("the SDK's progress messages", () => {
    it("are the runtime's own reports; a program's or user's debug message is not one", () => {
        expect(isSdkProgressDebug("Registering resource: t=nixos:index:Host, name=psi, custom=true, remote=false")).toBe(true);
        expect(isSdkProgressDebug("RegisterResource RPC prepared: t=nixos:index:Host, name=psi")).toBe(true);
        expect(isSdkProgressDebug("RegisterResource RPC finished: resource:psi[nixos:index:Host]; err: null, resp: urn:…")).toBe(true);
        expect(isSdkProgressDebug("Resource RPC serialization requested: resource:psi[nixos:index:Host] is current")).toBe(true);
        expect(isSdkProgressDebug("Invoking function: tok=nixos:index:providerInfo asynchronously")).toBe(true);
        expect(isSdkProgressDebug("psi: evaluated in 40 ms")).toBe(false);
        expect(isSdkProgressDebug("registering resource psi by hand")).toBe(false);
    });

    it("are dropped by the filter; every other message is sent, with its arguments", async () => {
        const send = vi.fn(async (_message: string, ..._rest: unknown[]) => undefined);
        const target = { debug: send as never };
        dropSdkProgressDebug(target);
        await (target.debug as (m: string, ...r: unknown[]) => Promise<void>)("Registering resource: t=nixos:index:Host, name=psi, custom=true, remote=false");
        await (target.debug as (m: string, ...r: unknown[]) => Promise<void>)("my own debug line", undefined, 7);
        expect(send.mock.calls).toEqual([["my own debug line", undefined, 7]]);
    });
});

describe("whether pulumi asks for debug output", () => {
    it("reads --debug, -d, -v, --verbose, --logtostderr and --logflow; --debug=false and arguments after -- do not count", () => {
        expect(pulumiArgsWantDebug(["preview", "--non-interactive", "-s", "dev"])).toBe(false);
        expect(pulumiArgsWantDebug(["preview", "--debug"])).toBe(true);
        expect(pulumiArgsWantDebug(["up", "-d", "--yes"])).toBe(true);
        expect(pulumiArgsWantDebug(["up", "-v=9", "--logtostderr"])).toBe(true);
        expect(pulumiArgsWantDebug(["up", "-v"])).toBe(true);
        expect(pulumiArgsWantDebug(["up", "--verbose=3"])).toBe(true);
        expect(pulumiArgsWantDebug(["up", "--logflow"])).toBe(true);
        expect(pulumiArgsWantDebug(["up", "--debug=false"])).toBe(false);
        expect(pulumiArgsWantDebug(["up", "--message", "x", "--", "--debug"])).toBe(false);
        expect(pulumiArgsWantDebug(["up", "--stack", "-dev"])).toBe(false);
    });

    it("reads -d in a group of one-letter flags as pflag does (`pulumi up -yd` debugs); a group's or flag's value is not read as flags", () => {
        expect(pulumiArgsWantDebug(["up", "-yd"])).toBe(true);
        expect(pulumiArgsWantDebug(["up", "-fyd", "-s", "dev"])).toBe(true);
        expect(pulumiArgsWantDebug(["preview", "-jd"])).toBe(true);
        expect(pulumiArgsWantDebug(["up", "-yv=9"])).toBe(true);
        expect(pulumiArgsWantDebug(["up", "-d=true"])).toBe(true);
        expect(pulumiArgsWantDebug(["up", "-yd=false"])).toBe(false);
        expect(pulumiArgsWantDebug(["up", "--debug", "--debug=false"])).toBe(false);
        expect(pulumiArgsWantDebug(["up", "-ysdev"])).toBe(false);
        expect(pulumiArgsWantDebug(["up", "-ys", "-dev"])).toBe(false);
        expect(pulumiArgsWantDebug(["up", "-m", "-d", "--yes"])).toBe(false);
        expect(pulumiArgsWantDebug(["up", "-r=-d"])).toBe(false);
        expect(pulumiArgsWantDebug(["up", "-s", "dev", "-yd"])).toBe(true);
    });

    it("finds the pulumi that runs the program among its ancestors: the language host is skipped, a shell above pulumi is not reached", () => {
        expect(pulumiAncestorArgs(chain(["preview", "--debug"]), 30)).toEqual(["preview", "--debug"]);
        expect(pulumiAncestorArgs(table({ 30: [1, ["node", "vitest"]] }), 30)).toBeUndefined();
        expect(pulumiAncestorArgs(table({}), 30)).toBeUndefined();
    });

    it("keeps the SDK's messages when pulumi asks for them, when NIXOS_FLEET_SDK_DEBUG is set, and when pulumi's arguments cannot be read", () => {
        const at30 = (reader: ProcessReader): ProcessReader => (pid) => reader(pid === process.ppid ? 30 : pid);
        expect(sdkDebugWanted({}, at30(chain(["preview", "-s", "dev"])))).toBe(false);
        expect(sdkDebugWanted({}, at30(chain(["preview", "--debug"])))).toBe(true);
        expect(sdkDebugWanted({ NIXOS_FLEET_SDK_DEBUG: "1" }, at30(chain(["preview"])))).toBe(true);
        expect(sdkDebugWanted({}, table({}))).toBe(true);
    });

    it("reads a real process table: this test's own ancestors run no pulumi", () => {
        expect(pulumiAncestorArgs()).toBeUndefined();
        expect(sdkDebugWanted({})).toBe(true);
    });
});
