// Program side of sandboxvm:index:Server, the example's stand-in for a cloud VM resource.
import * as pulumi from "@pulumi/pulumi";

export interface ServerArgs {
    /** The sandbox host's name (its NixOS configuration is nixosConfigurations.<name>). */
    name: pulumi.Input<string>;
}

export class Server extends pulumi.CustomResource {
    /** Where sshd listens (127.0.0.1 for sandbox hosts). */
    declare readonly address: pulumi.Output<string>;
    declare readonly port: pulumi.Output<number>;
    /** The server's public host key, "<type> <base64>", to pin. */
    declare readonly hostKey: pulumi.Output<string>;
    /** The private key that logs in as root. */
    declare readonly identityFile: pulumi.Output<string>;

    constructor(name: string, args: ServerArgs, opts?: pulumi.CustomResourceOptions) {
        super("sandboxvm:index:Server", name, { ...args, address: undefined, port: undefined, hostKey: undefined, identityFile: undefined }, opts);
    }
}
