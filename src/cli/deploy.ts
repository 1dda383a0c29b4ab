// `npm run deploy -- --hosts psi,rho [--stack prod] [--preview] [--yes] [--parallel N] [--json]`
import { DEPLOYMENT_OPTIONS, parseCommandArgs, positiveInteger } from "./args";
import { hostsFromOption } from "./hostsOption";
import { runDeployment } from "./runDeployment";
import { openFleetStack, resolveStackName } from "./stack";

export const DEPLOY_USAGE = "npm run deploy -- [--hosts psi,rho|@tag] [--stack NAME] [--preview] [--yes] [--parallel N] [--json]";

const OPTIONS = DEPLOYMENT_OPTIONS;

export async function deployCommand(args: string[]): Promise<number> {
    const values = parseCommandArgs(args, OPTIONS, DEPLOY_USAGE);
    if (values.help) {
        process.stdout.write(`usage: ${DEPLOY_USAGE}\n  Deploys the named hosts of the stack (all without --hosts); the others are not touched.\n`);
        return 0;
    }
    const projectRoot = process.cwd();
    const stackName = await resolveStackName(values.stack, projectRoot);
    const fleet = await openFleetStack(stackName, projectRoot);
    const hosts = hostsFromOption(fleet.hosts, values.hosts);
    const { code } = await runDeployment({
        stack: fleet.stack,
        stackName,
        hosts: hosts.map((host) => host.name),
        preview: values.preview ?? false,
        yes: values.yes ?? false,
        parallel: positiveInteger(values.parallel, "--parallel") ?? fleet.settings.parallel,
        json: values.json ?? false,
        description: `deploy ${values.hosts ?? "all hosts"}`,
    });
    return code;
}
