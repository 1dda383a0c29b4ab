// The Pulumi Node.js SDK reports its own progress to the engine as debug messages: "Registering
// resource", "RegisterResource RPC prepared", "RegisterResource RPC finished", "Resource RPC
// serialization requested", three or four per resource. Each is a gRPC call to the engine, made one
// after the other, and each becomes an engine event (in the event log the deploy command reads) that
// nothing shows unless pulumi runs with --debug or -v. Measured on this project's machine: 157 of
// the 265 events of a 50-resource preview, ~7 ms of CPU per resource across the program and the
// engine (docs/design-notes.md, "Start-up cost"). The program drops the SDK's own debug messages
// when the pulumi that runs it was started without --debug, -v or --logtostderr; the program's and
// a user's own debug messages are sent as before. NIXOS_FLEET_SDK_DEBUG=1 keeps them all.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import * as log from "@pulumi/pulumi/log";

/** How the SDK's runtime begins its debug messages (runtime/resource.ts, invoke.ts, rpc.ts). */
const SDK_DEBUG_PREFIXES = [
    "Registering resource: ",
    "RegisterResource RPC ",
    "RegisterResourceOutputs RPC ",
    "Resource RPC serialization requested: ",
    "Getting resource: ",
    "getResource Invoke RPC ",
    "Reading resource: ",
    "ReadResource RPC ",
    "Invoking function: ",
    "Invoke RPC ",
    "Calling function: ",
    "Call RPC ",
    "Serialize property [",
];

/** Whether a debug message is one of the SDK runtime's own progress reports. */
export function isSdkProgressDebug(message: string): boolean {
    return SDK_DEBUG_PREFIXES.some((prefix) => message.startsWith(prefix));
}

/** Whether pulumi's arguments ask for debug output: --debug/-d, verbose logging (-v, --verbose), --logtostderr or --logflow. */
export function pulumiArgsWantDebug(args: readonly string[]): boolean {
    for (const arg of args) {
        if (arg === "--") return false;
        if (arg === "-d" || arg === "--debug" || arg.startsWith("--debug=")) return !/^--debug=(false|0)$/i.test(arg);
        if (/^-v(=?\d*)$/.test(arg) || arg === "--verbose" || arg.startsWith("--verbose=")) return true;
        if (arg === "--logtostderr" || arg.startsWith("--logtostderr=") || arg === "--logflow" || arg.startsWith("--logflow=")) return true;
    }
    return false;
}

/** A process's parent pid and arguments, from /proc; undefined where it cannot be read (not Linux, gone). */
export type ProcessReader = (pid: number) => { ppid: number; argv: string[] } | undefined;

const procReader: ProcessReader = (pid) => {
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ")".
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((arg, i, all) => i < all.length - 1 || arg !== "");
        return Number.isInteger(ppid) ? { ppid, argv } : undefined;
    } catch {
        return undefined;
    }
};

/**
 * The arguments of the pulumi that runs this program: the nearest ancestor (language host, then
 * pulumi, within a few levels) whose executable is named `pulumi`; undefined when none is found.
 */
export function pulumiAncestorArgs(read: ProcessReader = procReader, start: number = process.ppid): string[] | undefined {
    let pid = start;
    for (let depth = 0; depth < 4 && pid > 1; depth++) {
        const proc = read(pid);
        if (!proc) return undefined;
        const [executable, ...args] = proc.argv;
        if (executable !== undefined && basename(executable) === "pulumi") return args;
        pid = proc.ppid;
    }
    return undefined;
}

/**
 * Whether the SDK's progress messages are worth sending: NIXOS_FLEET_SDK_DEBUG is set, pulumi asks
 * for debug output, or pulumi's arguments cannot be read (then nothing changes).
 */
export function sdkDebugWanted(env: NodeJS.ProcessEnv = process.env, read?: ProcessReader): boolean {
    if (env.NIXOS_FLEET_SDK_DEBUG) return true;
    const args = pulumiAncestorArgs(read);
    return args === undefined || pulumiArgsWantDebug(args);
}

/** The part of the SDK's log module the filter replaces. */
export interface DebugLog {
    debug: typeof log.debug;
}

/** Makes `target.debug` drop the SDK's progress messages and send every other message as before. */
export function dropSdkProgressDebug(target: DebugLog): void {
    const send = target.debug;
    target.debug = (message, ...rest) => (isSdkProgressDebug(message) ? Promise.resolve() : send(message, ...rest));
}

let quieted = false;

/**
 * From now on the program does not send the SDK's own progress messages to the engine, unless
 * sdkDebugWanted; every other debug message is sent as before. Once per process.
 */
export function quietSdkDebugLog(): void {
    if (quieted) return;
    quieted = true;
    if (!sdkDebugWanted()) dropSdkProgressDebug(log as DebugLog);
}
