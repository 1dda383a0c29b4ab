// What `pulumi import nixos:index:Host <name> <name>` needs from the stack's config: the host's
// inputs as the program would send them, without evaluating its system (the import records what
// the host runs). The provider gets this function from its entry point (provider/main.ts).
import { loadStackHosts } from "../config";
import { readStackConfigFile, stackFileName } from "../config/stackFile";
import { FleetError } from "../errors";
import type { ConfiguredHost, ConfiguredInputs } from "../provider/adopt";
import { hostInputsOf, hostLookup } from "./hostInputs";

export function configuredHostInputs(projectRoot: string): ConfiguredInputs {
    return async (stack, id, resourceName) => {
        if (id !== resourceName) {
            throw new FleetError({
                phase: "select",
                host: id,
                message: `the import names the resource "${resourceName}" but the host "${id}": the program names each Host after its host`,
                hint: `pulumi import nixos:index:Host ${id} ${id}`,
            });
        }
        const file = stackFileName(stack);
        const settings = readStackConfigFile(projectRoot, stack, file);
        const hosts = await loadStackHosts(settings, { file });
        const host = hosts.find((candidate) => candidate.name === id);
        if (!host) {
            throw new FleetError({
                phase: "select",
                host: id,
                message: `${id} is not a host of stack ${stack}`,
                hint: `the import id is a host name the stack selects (${hosts.map((h) => h.name).join(", ") || "none"}); add its file to hosts/ and list it in nixos-fleet:hosts`,
                file,
            });
        }
        const { storePath: _storePath, drvPath: _drvPath, ...configured } = hostInputsOf(host, { storePath: "", drvPath: "" }, undefined, hostLookup(hosts));
        return configured as ConfiguredHost;
    };
}
