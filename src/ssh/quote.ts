// ssh hands the remote side one command string, which the remote user's shell parses. We never
// build that string from raw config: every argument is single-quoted, so the remote shell sees
// exactly the argument array we meant.

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

export function shellQuote(arg: string): string {
    if (arg.length > 0 && SAFE.test(arg)) return arg;
    return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function remoteCommand(argv: readonly string[]): string {
    if (argv.length === 0) throw new Error("remoteCommand: empty argument list");
    return argv.map(shellQuote).join(" ");
}
