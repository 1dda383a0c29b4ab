// ssh hands the remote side one command string, which the remote user's shell parses. We never
// build that string from raw config: every argument is single-quoted, so the remote shell sees
// exactly the argument array we meant.

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

const quote = (arg: string): string => `'${arg.replace(/'/g, `'\\''`)}'`;

export function shellQuote(arg: string): string {
    return arg.length > 0 && SAFE.test(arg) ? arg : quote(arg);
}

export function remoteCommand(argv: readonly string[]): string {
    if (argv.length === 0) throw new Error("remoteCommand: empty argument list");
    // An unquoted first word like FOO=bar would be a variable assignment, not the command.
    const [command, ...args] = argv;
    const first = command!.includes("=") ? quote(command!) : shellQuote(command!);
    return [first, ...args.map(shellQuote)].join(" ");
}
