// Rollback support: find the system profile generation on a host that holds a given store path,
// so a rollback can switch to it (nix-env --switch-generation semantics) without copying.
import { FleetError, tail } from "../errors";
import type { SshConnection } from "../ssh/connection";
import { SYSTEM_PROFILE } from "./hostState";

// A fixed script: each generation link and the store path it resolves to (missing ones skipped).
const LIST_LINKS = `for l in ${SYSTEM_PROFILE}-*-link; do [ -e "$l" ] && echo "$l $(readlink -f "$l")"; done; true`;

export function parseProfileLinks(output: string): Map<number, string> {
    const links = new Map<number, string>();
    for (const line of output.split("\n")) {
        const match = /system-(\d+)-link (\/nix\/store\/\S+)$/.exec(line.trim());
        if (match) links.set(Number(match[1]), match[2]!);
    }
    return links;
}

/** The generation holding storePath (the wanted one if given and still there, else the newest). */
export async function findGeneration(connection: SshConnection, storePath: string, wanted?: number): Promise<number | undefined> {
    const result = await connection.run(["sh", "-c", LIST_LINKS]);
    if (result.code !== 0) {
        throw new FleetError({
            phase: "read",
            host: connection.target.name,
            message: "could not list the host's system generations",
            detail: tail(result.stderr),
        });
    }
    const links = parseProfileLinks(result.stdout);
    if (wanted !== undefined && links.get(wanted) === storePath) return wanted;
    const matching = [...links].filter(([, path]) => path === storePath).map(([generation]) => generation);
    return matching.length ? Math.max(...matching) : undefined;
}
