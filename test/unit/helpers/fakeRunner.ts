// A scripted ProcessRunner for unit tests. Every call is recorded (argv, options, and for ssh
// commands that ride a master: the remote command, also split back into the words the remote
// shell sees). Replies come from rules matched on the call; a call no rule matches fails loudly.
import type { ProcessRunner, RunOptions, RunResult } from "../../../src/process/runner";

export interface RecordedCall {
    argv: readonly string[];
    options: RunOptions;
    /** `ssh … -o ControlMaster=yes … -N -f dest`: the master connection being started. */
    isMasterStart: boolean;
    /** `ssh … -O exit dest`: the master connection being stopped. */
    isMasterExit: boolean;
    /** `ssh … -O check dest`: asking whether the master connection still runs. */
    isMasterCheck: boolean;
    /** For `ssh … -o ControlMaster=no … dest <command>`: the one command string ssh sends. */
    remote?: string;
    /** `remote` parsed the way a POSIX shell splits it into words. */
    remoteArgv?: string[];
    /** `remoteArgv` without a leading `sudo -n --`. */
    remoteCommand?: string[];
    /** True when the remote command was prefixed with `sudo -n --`. */
    viaSudo: boolean;
}

export type Reply = Partial<Omit<RunResult, "argv">>;
export type Responder = Reply | ((call: RecordedCall) => Reply | Promise<Reply>);
export type Matcher = (call: RecordedCall) => boolean;

interface Rule {
    match: Matcher;
    respond: Responder;
    /** Remaining uses; undefined = unlimited. */
    times?: number;
}

/** Splits a command string as sh would for the quoting remoteCommand produces ('…', \', bare words). */
export function shellWords(command: string): string[] {
    const words: string[] = [];
    let word = "";
    let inWord = false;
    for (let i = 0; i < command.length; i++) {
        const c = command[i]!;
        if (c === "'") {
            const end = command.indexOf("'", i + 1);
            if (end < 0) throw new Error(`unterminated quote in ${command}`);
            word += command.slice(i + 1, end);
            inWord = true;
            i = end;
        } else if (c === "\\") {
            word += command[i + 1] ?? "";
            inWord = true;
            i += 1;
        } else if (c === " ") {
            if (inWord) words.push(word);
            word = "";
            inWord = false;
        } else {
            word += c;
            inWord = true;
        }
    }
    if (inWord) words.push(word);
    return words;
}

function describeCall(argv: readonly string[], options: RunOptions): RecordedCall {
    const isSsh = argv[0] === "ssh";
    const isMasterStart = isSsh && argv.includes("ControlMaster=yes");
    const control = isSsh && argv.includes("-O") ? argv[argv.indexOf("-O") + 1] : undefined;
    const isMasterExit = control === "exit";
    const isMasterCheck = control === "check";
    const call: RecordedCall = { argv, options, isMasterStart, isMasterExit, isMasterCheck, viaSudo: false };
    if (isSsh && argv.includes("ControlMaster=no") && control === undefined) {
        call.remote = argv[argv.length - 1];
        call.remoteArgv = shellWords(call.remote ?? "");
        const sudo = call.remoteArgv.slice(0, 3).join(" ") === "sudo -n --";
        call.viaSudo = sudo;
        call.remoteCommand = sudo ? call.remoteArgv.slice(3) : call.remoteArgv;
    }
    return call;
}

function result(argv: readonly string[], reply: Reply): RunResult {
    return {
        argv,
        code: reply.code === undefined ? 0 : reply.code,
        signal: reply.signal ?? null,
        stdout: reply.stdout ?? "",
        stderr: reply.stderr ?? "",
        timedOut: reply.timedOut ?? false,
        durationMs: reply.durationMs ?? 1,
    };
}

const startsWith = (words: readonly string[] | undefined, prefix: readonly string[]): boolean =>
    words !== undefined && prefix.every((word, i) => words[i] === word);

/** argv contains `words` as a contiguous run. */
export function argvHas(argv: readonly string[], ...words: string[]): boolean {
    for (let i = 0; i + words.length <= argv.length; i++) {
        if (words.every((word, j) => argv[i + j] === word)) return true;
    }
    return false;
}

// Matchers.
/** A local (non-ssh) command whose argv contains `words` in a row, e.g. local("flake", "archive"). */
export const local = (...words: string[]): Matcher => (call) => call.argv[0] !== "ssh" && argvHas(call.argv, ...words);
/** A remote command (with or without sudo) whose words start with `prefix`. */
export const remote = (...prefix: string[]): Matcher => (call) => startsWith(call.remoteCommand, prefix);
/** A remote command whose first word ends with `suffix` (e.g. "/bin/switch-to-configuration"). */
export const remoteProgram = (suffix: string): Matcher => (call) => call.remoteCommand?.[0]?.endsWith(suffix) === true;
export const masterStart: Matcher = (call) => call.isMasterStart;
export const masterExit: Matcher = (call) => call.isMasterExit;
export const masterCheck: Matcher = (call) => call.isMasterCheck;

export class FakeRunner {
    readonly calls: RecordedCall[] = [];
    /** Calls no rule answered (they were rejected). */
    readonly unexpected: RecordedCall[] = [];
    private readonly rules: Rule[] = [];

    constructor() {
        // Starting, checking and stopping the master succeed unless a test says otherwise.
        this.on(masterStart, {});
        this.on(masterCheck, { stderr: "Master running (pid=4242)\r\n" });
        this.on(masterExit, {});
    }

    /** Answers every matching call. A later rule wins over an earlier one. */
    on(match: Matcher, respond: Responder): this {
        this.rules.push({ match, respond });
        return this;
    }

    /** Answers the next matching call only; one-shot rules are used before standing ones, in order. */
    once(match: Matcher, respond: Responder): this {
        this.rules.push({ match, respond, times: 1 });
        return this;
    }

    readonly run: ProcessRunner = async (argv, options = {}) => {
        const call = describeCall([...argv], options);
        this.calls.push(call);
        const oneShot = this.rules.find((rule) => rule.times !== undefined && rule.times > 0 && rule.match(call));
        const standing = [...this.rules].reverse().find((rule) => rule.times === undefined && rule.match(call));
        const rule = oneShot ?? standing;
        if (!rule) {
            this.unexpected.push(call);
            throw new Error(`FakeRunner: unexpected call: ${argv.join(" ")}`);
        }
        if (rule.times !== undefined) rule.times -= 1;
        const reply = typeof rule.respond === "function" ? await rule.respond(call) : rule.respond;
        return result(argv, reply);
    };

    /** Calls matching `match`, in order. */
    matching(match: Matcher): RecordedCall[] {
        return this.calls.filter(match);
    }

    /** The remote commands (without sudo) that ran, as words joined by spaces, in order. */
    remoteCommands(): string[] {
        return this.calls.filter((call) => call.remoteCommand).map((call) => call.remoteCommand!.join(" "));
    }

    /** The local (non-ssh) commands that ran, in order. */
    localCalls(): RecordedCall[] {
        return this.calls.filter((call) => call.argv[0] !== "ssh");
    }
}

/** The value after `-o Key=` in an ssh argv (first occurrence), or undefined. */
export function sshOption(argv: readonly string[], key: string): string | undefined {
    for (let i = 0; i + 1 < argv.length; i++) {
        if (argv[i] === "-o" && argv[i + 1]!.startsWith(`${key}=`)) return argv[i + 1]!.slice(key.length + 1);
    }
    return undefined;
}
