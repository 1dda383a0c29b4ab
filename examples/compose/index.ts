// Servers and their NixOS systems in one program: each `Server` (here a sandbox host standing in
// for a cloud VM) gives an address, a port and a host key as Outputs; nixos-fleet's `Host` takes
// them and deploys the system the flake evaluates to. On the first preview the servers do not
// exist yet, so the preview says each host is deployed once its server exists.
import * as pulumi from "@pulumi/pulumi";
import { Host, evaluateSystem } from "nixos-fleet";
import { Server } from "./vm/server";

export = async () => {
    const config = new pulumi.Config();
    const flake = config.require("flake");
    const names = config.requireObject<string[]>("servers");

    const deployed: Record<string, pulumi.Output<string>> = {};
    for (const name of names) {
        const server = new Server(name, { name });
        const system = await evaluateSystem({ flake, attribute: `nixosConfigurations.${name}` });
        const host = new Host(name, {
            ...system,
            address: server.address,
            port: server.port,
            hostKey: server.hostKey,
            identityFile: server.identityFile,
        });
        deployed[name] = host.storePath;
    }
    return { deployed };
};
