// `npm run deploy -- --hosts psi,rho [--stack prod] [--preview] [--yes] [--parallel N] [--batch-size N|P%] [--json]`
import { parseBatchSizeOption } from "../config/rollout";
import { BATCH_SIZE_ENV, planRollout } from "../program/rollout";
import { DEPLOYMENT_OPTIONS, parseCommandArgs, positiveInteger } from "./args";
import { hostsFromOption } from "./hostsOption";
import { runDeployment } from "./runDeployment";
import { deploymentTargets, openFleetStack, recordedHosts, resolveStackName } from "./stack";
import { cacheDir } from "../nix/evalCache";
import { filePackageCache } from "../nix/packageCache";

export const DEPLOY_USAGE = "npm run deploy -- [--hosts psi,rho|@tag] [--stack NAME] [--preview] [--yes] [--parallel N] [--batch-size N|P%] [--json]";

const OPTIONS = { ...DEPLOYMENT_OPTIONS, "batch-size": { type: "string" } } as const;

export async function deployCommand(args: string[]): Promise<number> {
    const values = parseCommandArgs(args, OPTIONS, DEPLOY_USAGE);
    if (values.help) {
        process.stdout.write(
            `usage: ${DEPLOY_USAGE}\n  Deploys the named hosts of the stack (all without --hosts); the others are not touched.\n` +
                "  --batch-size N|P%  hosts per rollout batch after the canary, for this run (overrides nixos-fleet:rollout.batchSize)\n",
        );
        return 0;
    }
    // Checked before the stack is opened: a usage error costs nothing.
    const batchSize = parseBatchSizeOption(values["batch-size"]) ?? parseBatchSizeOption(process.env[BATCH_SIZE_ENV] || undefined, BATCH_SIZE_ENV);
    const projectRoot = process.cwd();
    const stackName = await resolveStackName(values.stack, projectRoot);
    const fleet = await openFleetStack(stackName, projectRoot);
    const hosts = hostsFromOption(fleet.hosts, values.hosts);
    // The program plans the same batches from the same settings (src/program/fleet.ts).
    const batches = planRollout(fleet.hosts, fleet.settings.rollout, batchSize);
    const maxFailures = fleet.settings.rollout?.maxFailures ?? 0;
    if (values["batch-size"] !== undefined) fleet.stack.envVars[BATCH_SIZE_ENV] = values["batch-size"];
    // A staged run may hold hosts back: their rows show what the stack recorded for them.
    const recorded = batches.length > 1 ? await recordedHosts(fleet.stack) : undefined;
    const { code } = await runDeployment({
        stack: fleet.stack,
        stackName,
        hosts: hosts.map((host) => host.name),
        targets: deploymentTargets(stackName, hosts),
        batches,
        recorded,
        maxFailures,
        preview: values.preview ?? false,
        yes: values.yes ?? false,
        parallel: positiveInteger(values.parallel, "--parallel") ?? fleet.settings.parallel,
        packageCache: filePackageCache(cacheDir()),
        json: values.json ?? false,
        description: `deploy ${values.hosts ?? "all hosts"}`,
    });
    return code;
}
