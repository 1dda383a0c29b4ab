// Program side of nixos:index:Hook: a command run on a host after each deploy that changed its
// generation (see src/provider/hookProvider.ts).
import * as pulumi from "./pulumiSdk";
import type { z } from "zod";
import type { hookInputsSchema } from "../provider/hookProvider";
import type { DeepInput } from "./host";
import { HOOK_TYPE } from "./types";

export { HOOK_TYPE } from "./types";

/** The arguments of a Hook: the host's connection settings, the command and its trigger (what may be left out, as the provider's check reads them). */
export type HookArgs = { [K in keyof z.input<typeof hookInputsSchema>]: DeepInput<z.input<typeof hookInputsSchema>[K]> };

export class Hook extends pulumi.CustomResource {
    declare readonly ranAt: pulumi.Output<string>;
    declare readonly output: pulumi.Output<string>;

    constructor(name: string, args: HookArgs, opts?: pulumi.CustomResourceOptions) {
        // A hook may print secrets: its output is recorded as a secret (the provider marks it too).
        super(HOOK_TYPE, name, { ...args, ranAt: undefined, output: undefined }, { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "output"] });
    }
}
