// The sandboxvm provider: a Server is a sandbox host of nixos-fleet's repository (a systemd-nspawn
// container with its own sshd, see docs/sandbox.md), started on create and destroyed on delete,
// as a cloud provider creates and deletes a VM. Configured by the environment the run script sets:
// NIXOS_FLEET_REPO (the repository), SANDBOX_DIR and SANDBOX_PORT_BASE.
import * as provider from "@pulumi/pulumi/provider";
import { join } from "node:path";

interface SandboxHost {
    address: string;
    port: number;
    identityFile: string;
    hostPublicKey: string;
}

interface SandboxFleet {
    start(names: string[]): Promise<SandboxHost[]>;
    destroy(names: string[]): Promise<void>;
    host(name: string): SandboxHost;
    status(): Promise<{ name: string; running: boolean }[]>;
}

function fleet(): SandboxFleet {
    const repo = process.env.NIXOS_FLEET_REPO;
    if (!repo) throw new Error("NIXOS_FLEET_REPO is not set: run this example through its run script");
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { SandboxFleet } = require(join(repo, "sandbox", "fleet")) as { SandboxFleet: new (options: { dir?: string; portBase?: number }) => SandboxFleet };
    return new SandboxFleet({ dir: process.env.SANDBOX_DIR, portBase: process.env.SANDBOX_PORT_BASE ? Number(process.env.SANDBOX_PORT_BASE) : undefined });
}

const outputsOf = (name: string, host: SandboxHost) => ({
    name,
    address: host.address,
    port: host.port,
    hostKey: host.hostPublicKey,
    identityFile: host.identityFile,
});

class ServerProvider implements provider.Provider {
    readonly version = "0.1.0";

    async check(_urn: string, _olds: unknown, news: Record<string, unknown>): Promise<provider.CheckResult> {
        if (typeof news.name !== "string" || !/^[a-z][a-z0-9-]*$/.test(news.name)) {
            return { failures: [{ property: "name", reason: "a sandbox host name (lower-case letters, digits, dashes)" }] };
        }
        return { inputs: news };
    }

    async diff(_id: string, _urn: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<provider.DiffResult> {
        const renamed = olds.name !== news.name;
        return { changes: renamed, replaces: renamed ? ["name"] : [], deleteBeforeReplace: true };
    }

    async create(_urn: string, news: Record<string, unknown>): Promise<provider.CreateResult> {
        const name = String(news.name);
        const [host] = await fleet().start([name]);
        return { id: name, outs: outputsOf(name, host!) };
    }

    async read(id: string, _urn: string, props?: Record<string, unknown>): Promise<provider.ReadResult> {
        const running = (await fleet().status()).find((h) => h.name === id)?.running;
        return running ? { id, props: outputsOf(id, fleet().host(id)) } : { id: "", props: props ?? {} };
    }

    async delete(id: string): Promise<void> {
        await fleet().destroy([id]);
    }
}

provider.main(new ServerProvider(), process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`pulumi-resource-sandboxvm: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
});
