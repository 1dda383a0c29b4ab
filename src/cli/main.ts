// nixos-fleet's operator commands: `npm run deploy|rollback|generations|exec|build -- …`. Each command is
// one file in this folder; errors are printed by formatError, never as a stack trace.
import { formatError } from "../errors";
import { startPrefetch, stopPrefetch } from "./prefetch";

/** The commands that open a stack: their first pulumi runs start before they load (prefetch.ts). */
const STACK_COMMANDS = new Set(["deploy", "rollback", "generations", "exec", "build"]);
const [commandName, ...commandArgs] = process.argv.slice(2);
if (commandName !== undefined && STACK_COMMANDS.has(commandName)) startPrefetch(commandArgs, process.cwd());

type Command = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
    deploy: async () => (await import("./deploy")).deployCommand,
    rollback: async () => (await import("./rollback")).rollbackCommand,
    generations: async () => (await import("./generations")).generationsCommand,
    // Internal: run by scripts/pulumi after `pulumi refresh` (not an npm script).
    "refresh-check": async () => (await import("./refreshCheck")).refreshCheckCommand,
    exec: async () => (await import("./exec")).execCommand,
    build: async () => (await import("./build")).buildCommand,
};

async function main(argv: string[]): Promise<number> {
    const [name, ...args] = argv;
    const load = name === undefined ? undefined : COMMANDS[name];
    if (!load) {
        process.stderr.write(`usage: nixos-fleet <${Object.keys(COMMANDS).filter((command) => command !== "refresh-check").join("|")}> [options]  (--help for a command's options)\n`);
        return 2;
    }
    return (await load())(args);
}

main(process.argv.slice(2)).then(
    (code) => {
        // A pulumi run started for the command and never taken (it ended first) ends with it.
        stopPrefetch();
        process.exit(code);
    },
    (error: unknown) => {
        stopPrefetch();
        process.stderr.write(`error: ${formatError(error)}\n`);
        process.exit(1);
    },
);
