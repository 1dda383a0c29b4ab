// Two stacks that deploy the same server fight over it (each deploys its own system and records
// its own generations). The program warns at every preview when another stack of the project
// lists a host that this stack lists too.
import { readdirSync } from "node:fs";
import { loadStackHostsSync, type HostConfig } from "../config";
import { readStackConfigFile } from "../config/stackFile";

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
            // A stack without hosts fails to read: skipped like any other invalid one.
            const settings = readStackConfigFile(projectRoot, match[1]!, file);
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
