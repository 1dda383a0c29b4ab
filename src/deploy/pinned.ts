// Rollback support: find the system profile generation on a host that holds a given store path,
// so a rollback can switch to it (nix-env --switch-generation semantics) without copying.
import { FleetError, tail } from "../errors";
import type { SshConnection } from "../ssh/connection";
import { parseProfileGenerations, READ_GENERATIONS_SCRIPT } from "./cleanup";

/** The generation holding storePath (the wanted one if given and still there, else the newest). */
export async function findGeneration(connection: SshConnection, storePath: string, wanted?: number): Promise<number | undefined> {
    const result = await connection.run(["sh", "-c", READ_GENERATIONS_SCRIPT]);
    if (result.code !== 0) {
        throw new FleetError({
            phase: "read",
            host: connection.target.name,
            message: "could not list the host's system generations",
            detail: tail(result.stderr),
        });
    }
    const matching = parseProfileGenerations(result.stdout)
        .generations.filter((entry) => entry.storePath === storePath)
        .map((entry) => entry.generation);
    if (wanted !== undefined && matching.includes(wanted)) return wanted;
    return matching.length ? Math.max(...matching) : undefined;
}
