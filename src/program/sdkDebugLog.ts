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

/**
 * Pulumi's flags (of the commands that run a program) whose value may be the next argument: that
 * argument is a value (a stack named "-dev"), not flags.
 */
const FLAGS_WITH_VALUE = new Set([
    "-s", "--stack", "-m", "--message", "-c", "--config", "-t", "--target", "-x", "--exclude", "-p", "--parallel", "-C", "--cwd",
    "--color", "--config-file", "--secrets-provider", "--exec-kind", "--event-log", "--replace", "--target-replace",
    "--policy-pack", "--policy-pack-config", "--plan", "--save-plan", "--tracing", "--profiling", "--otel-traces",
]);

/** One-letter flags that take a value: in a group (`-ysdev`) the rest of the group is it, or the next argument when none is left. */
const SHORT_FLAGS_WITH_VALUE = "smctxpCo";

/**
 * What a group of one-letter flags says (pflag's reading: `-yd` is -y -d, `-d=false`, `-sdev` is
 * -s dev): "verbose" for -v, else the debug flag's value when -d is in it, else undefined; and
 * whether the next argument is the value of its last flag.
 */
function shortGroup(letters: string): { said?: boolean | "verbose"; takesNext: boolean } {
    let said: boolean | undefined;
    for (let i = 0; i < letters.length; i++) {
        const letter = letters[i]!;
        const rest = letters.slice(i + 1);
        if (letter === "v") return { said: "verbose", takesNext: false };
        if (letter === "d") said = rest.startsWith("=") ? !/^=(false|f|0)$/i.test(rest) : true;
        if (SHORT_FLAGS_WITH_VALUE.includes(letter)) return { said, takesNext: rest === "" };
        if (rest.startsWith("=")) break;
    }
    return { said, takesNext: false };
}

/** Whether pulumi's arguments ask for debug output: --debug/-d (also in a group: -yd), verbose logging (-v, --verbose), --logtostderr or --logflow. */
export function pulumiArgsWantDebug(args: readonly string[]): boolean {
    let debug = false;
    for (let i = 0; i < args.length; i++) {
        const arg = args[i]!;
        if (arg === "--") break;
        if (FLAGS_WITH_VALUE.has(arg)) {
            i++; // its value
        } else if (arg === "--debug" || arg.startsWith("--debug=")) {
            debug = !/^--debug=(false|f|0)$/i.test(arg);
        } else if (arg === "--verbose" || arg.startsWith("--verbose=")) {
            return true;
        } else if (arg === "--logtostderr" || arg.startsWith("--logtostderr=") || arg === "--logflow" || arg.startsWith("--logflow=")) {
            return true;
        } else if (/^-[^-]/.test(arg)) {
            const group = shortGroup(arg.slice(1));
            if (group.said === "verbose") return true;
            if (group.said !== undefined) debug = group.said;
            if (group.takesNext) i++;
        }
    }
    return debug;
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
