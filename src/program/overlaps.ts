// Two stacks that deploy the same server fight over it (each deploys its own system and records
// its own generations). The program warns at every preview when another stack of the project
// lists a host that this stack lists too.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { configSourceOf, loadStackHostsSync, readStackConfig, type HostConfig } from "../config";

export interface Overlap {
    host: string;
    otherStack: string;
    otherHost: string;
}

/** What identifies a server: where ssh goes. */
function serverKey(host: Pick<HostConfig, "address" | "port" | "sshConfigFile">): string {
    return `${host.address}|${host.port}|${host.sshConfigFile ?? ""}`;
}

/** The hosts each other stack of the project selects; stacks whose config is invalid are skipped (their own runs report it). */
export function otherStackHosts(projectRoot: string, currentStack: string): { stack: string; hosts: HostConfig[] }[] {
    const stacks: { stack: string; hosts: HostConfig[] }[] = [];
    for (const file of readdirSync(projectRoot)) {
        const match = /^Pulumi\.(.+)\.ya?ml$/.exec(file);
        if (!match || match[1] === currentStack) continue;
        try {
            const config = ((parse(readFileSync(join(projectRoot, file), "utf8")) as { config?: Record<string, unknown> } | null)?.config ?? {});
            const source = configSourceOf(
                Object.fromEntries(Object.entries(config).map(([key, value]) => [key, typeof value === "string" ? value : JSON.stringify(value)])),
            );
            if (source.get("hosts") === undefined) continue;
            const settings = readStackConfig(source, { baseDir: projectRoot, file });
            stacks.push({ stack: match[1]!, hosts: loadStackHostsSync(settings, { file, checkFiles: false }) });
        } catch {
            // not ours to report
        }
    }
    return stacks;
}

export function findOverlaps(ours: readonly HostConfig[], others: readonly { stack: string; hosts: readonly HostConfig[] }[]): Overlap[] {
    const overlaps: Overlap[] = [];
    for (const host of ours) {
        for (const other of others) {
            const same = other.hosts.find((candidate) => serverKey(candidate) === serverKey(host));
            if (same) overlaps.push({ host: host.name, otherStack: other.stack, otherHost: same.name });
        }
    }
    return overlaps;
}
