// `npm run sandbox -- <command>`: the sandbox fleet from the command line (see docs/sandbox.md).
import { spawn } from "node:child_process";
import { Knobs, parseKnobAssignments } from "./knobs";
import { DEFAULT_HOSTS, HostStatus, SandboxFleet } from "./fleet";

const USAGE = `usage: npm run sandbox -- <command>
  start [hosts…]           start hosts (default: ${DEFAULT_HOSTS.join(" ")}); running ones are kept
  stop [hosts…]            stop hosts (default: all); their state is kept
  destroy [hosts…]         stop and delete hosts' state (default: all)
  status                   hosts, ports, processes, knobs, current/boot systems
  ssh <host> [command…]    ssh into a host as root (SANDBOX_USER=deployer for the non-root user)
  set <host> key=value…    knobs: version=N fail=true|false breakSsh=true|false size=MiB paths=N slow=seconds
                           failedUnits=web[,unit…] packages=name@version[,…] kernel=N (see docs/sandbox.md)
  console <host> command…  run a command as root in the host without SSH (repair after breakSsh)
  reboot <host>            reboot a host (systemctl reboot) into its boot default generation
  env <host>               print NIX_SSHOPTS and the store URI for nix copy
environment: SANDBOX_DIR (default <project>/.sandbox), SANDBOX_PORT_BASE (default 22200)`;

function short(storePath: string | undefined): string {
    return storePath === undefined ? "-" : storePath.replace(/^\/nix\/store\/[a-z0-9]{32}-/, "");
}

function knobText(knobs: Knobs): string {
    return Object.entries(knobs).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`).join(" ");
}

function printStatus(fleet: SandboxFleet, hosts: HostStatus[]): void {
    console.log(`sandbox dir: ${fleet.dir}`);
    if (hosts.length === 0) {
        console.log("no hosts (npm run sandbox -- start)");
        return;
    }
    for (const h of hosts) {
        console.log(
            `${h.name.padEnd(10)} ${(h.running ? (h.supervised ? "running" : "orphaned") : "stopped").padEnd(8)} ssh 127.0.0.1:${h.port ?? "-"}  web 127.0.0.1:${h.webPort ?? "-"}  ${knobText(h.knobs)}\n` +
                `           current: ${short(h.currentSystem)}  booted: ${short(h.bootedSystem)}  boot default: ${short(h.bootDefault)}  profile: ${h.profileGeneration ?? "-"}\n` +
                `           failed units: ${h.running ? (h.failedUnits.length ? h.failedUnits.join(" ") : "none") : "-"}`,
        );
    }
}

/** Interactive ssh needs the terminal itself, which the piping process runner cannot give. */
function interactiveSsh(fleet: SandboxFleet, name: string, command: string[]): Promise<number> {
    const h = fleet.host(name);
    const user = process.env.SANDBOX_USER ?? "root";
    if (command[0] === "--") command = command.slice(1);
    const child = spawn("ssh", ["-F", h.sshConfigFile, "-l", user, name, ...(command.length ? ["--", ...command] : [])], { stdio: "inherit" });
    return new Promise((resolve) => child.on("close", (code) => resolve(code ?? 255)));
}

async function main(argv: string[]): Promise<number> {
    const [command, ...args] = argv;
    const fleet = new SandboxFleet({ log: (line) => console.log(line) });
    switch (command) {
        case "start":
            for (const h of await fleet.start(args.length ? args : DEFAULT_HOSTS)) console.log(`${h.name}: ssh -F ${h.sshConfigFile} ${h.name}`);
            return 0;
        case "stop":
            await fleet.stop(args.length ? args : undefined);
            return 0;
        case "destroy":
            await fleet.destroy(args.length ? args : undefined);
            return 0;
        case "status":
            printStatus(fleet, await fleet.status());
            return 0;
        case "ssh": {
            const [name, ...rest] = args;
            if (!name) throw new Error("ssh needs a host name");
            return interactiveSsh(fleet, name, rest);
        }
        case "console": {
            const [name, ...rest] = args;
            if (!name || rest.length === 0) throw new Error("console needs a host name and a command");
            const result = await fleet.console(name, rest);
            process.stdout.write(result.stdout);
            process.stderr.write(result.stderr);
            return result.code ?? 1;
        }
        case "set": {
            const [name, ...assignments] = args;
            if (!name) throw new Error("set needs a host name and key=value knobs");
            const file = await fleet.set(name, parseKnobAssignments(assignments));
            const { system: _system, authorizedKeys: _keys, webPort: _web, ...knobs } = file;
            console.log(`${name}: ${knobText(knobs)}`);
            return 0;
        }
        case "reboot": {
            const [name] = args;
            if (!name || args.length > 1) throw new Error("reboot needs exactly one host name");
            await fleet.reboot(name);
            return 0;
        }
        case "env": {
            const [name] = args;
            if (!name) throw new Error("env needs a host name");
            console.log(`NIX_SSHOPTS='${fleet.nixSshOpts(name)}'`);
            console.log(`STORE=${fleet.storeUri()}`);
            console.log(`FLAKE=${fleet.flakeRef}#${name}`);
            return 0;
        }
        case undefined:
        case "help":
        case "--help":
        case "-h":
            console.log(USAGE);
            return command === undefined ? 1 : 0;
        default:
            console.error(`sandbox: unknown command '${command}'\n${USAGE}`);
            return 1;
    }
}

main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
        console.error(`sandbox: error: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
    },
);
