// nixos-fleet: every host of this stack as a nixos:index:Host resource. The stack's config
// (Pulumi.<stack>.yaml, namespace nixos-fleet) says which hosts belong to it; hosts/*.yaml
// describe them; one Nix evaluation per flake gives each host's system store path.
import * as pulumi from "@pulumi/pulumi";
import { formatError } from "./src/errors";
import { planFleet } from "./src/program/fleet";
import { findOverlaps, otherStackHosts } from "./src/program/overlaps";
import { runProcess } from "./src/process/runner";
import { Host, secretHostArgs } from "./src/resources/host";
import { Hook } from "./src/resources/hook";
import { connectionOf, notEvaluatedInputsOf } from "./src/program/hostInputs";
import { programConfig } from "./src/program/configSource";
import { readProvenance } from "./src/program/provenance";
import { maskSecrets, programSecretPaths, secretFileFields, secretHostFields, secretTexts } from "./src/program/secretConfig";
import { namespaceValues, parseConfigEnvironment } from "./src/program/configSource";
import { targetedHosts } from "./src/program/targets";

export = async () => {
    let plan;
    const started = Date.now();
    // Which config values are secret (`config set --secret`): what they reach stays secret.
    const secretPaths = programSecretPaths("nixos-fleet", process.cwd(), pulumi.getStack());
    const secretConfigTexts = secretTexts(secretPaths, namespaceValues(parseConfigEnvironment(process.env.PULUMI_CONFIG), "nixos-fleet"));
    try {
        plan = await planFleet({
            // Not pulumi.Config: a stack without config must read as empty, not crash (see
            // configSource); every nixos-fleet:* key, so a misspelt one is an error, not ignored.
            config: programConfig("nixos-fleet"),
            projectRoot: process.cwd(),
            stackName: pulumi.getStack(),
            runner: runProcess,
            env: process.env,
            secretPaths,
            // `deploy --hosts` / `pulumi up --target`: only those hosts are evaluated and registered;
            // a targeted run keeps every other host's recorded state as it is.
            targets: targetedHosts(process.env),
            // Only an update records where a deployment came from; a preview does not pay for
            // reading the stack's history and the flakes' revisions (it is not diffed).
            provenance: pulumi.runtime.isDryRun()
                ? undefined
                : (flakes) => readProvenance(flakes, { runner: runProcess, projectRoot: process.cwd(), stackName: pulumi.getStack() }),
        });
    } catch (error) {
        // A readable error (file, line, host, phase, hint) instead of a stack trace. Exiting with
        // the SDK's "error already reported" code ends the run at once; a thrown error would leave
        // the SDK's gRPC channels holding the process open for ~20 s.
        await pulumi.log.error(maskSecrets(formatError(error), secretConfigTexts));
        process.exit(32);
    }

    for (const warning of plan.warnings) void pulumi.log.warn(warning);
    const { evaluated, cached } = plan.evaluation;
    const how = [
        ...(evaluated ? [`${evaluated} nix eval${evaluated === 1 ? "" : "s"}, one per flake`] : []),
        ...(cached ? [`${cached} unchanged flake${cached === 1 ? "" : "s"} from the evaluation cache`] : []),
        ...(plan.notTargeted.length ? [`not targeted, not evaluated: ${plan.notTargeted.map((host) => host.name).join(", ")}`] : []),
    ];
    void pulumi.log.info(`evaluate: ${plan.hosts.length} host(s) in ${((Date.now() - started) / 1000).toFixed(1)}s (${how.join("; ") || "nothing to evaluate"})`);
    const overlaps = findOverlaps(
        plan.hosts.map((host) => host.config),
        otherStackHosts(process.cwd(), pulumi.getStack()),
    );
    if (plan.rolloutNotice) void pulumi.log.info(plan.rolloutNotice);
    const hosts: Record<string, Host> = {};
    // Registered (never evaluated) so the engine keeps their recorded state and the stack's outputs
    // still list them; a targeted run does not check, update or delete them.
    for (const config of plan.notTargeted) {
        const inputs = notEvaluatedInputsOf(config, "not targeted");
        const secretKeys = secretHostFields(secretPaths, config.name, Object.keys(inputs));
        hosts[config.name] = new Host(config.name, secretHostArgs(inputs, secretKeys), { additionalSecretOutputs: secretKeys });
    }
    const batchOf = new Map(plan.batches.flatMap((batch) => batch.hosts.map((name) => [name, batch.number] as const)));
    for (const { config, inputs, pin } of plan.hosts) {
        // A staged rollout: the engine starts this host only after every host of the batch before
        // it deployed and passed its checks; a failure there stops it (src/program/rollout.ts).
        const batch = batchOf.get(config.name)!;
        const before = plan.batches.find((b) => b.number === batch - 1)?.hosts.map((name) => hosts[name]!) ?? [];
        // Fields whose value came from secret config are secret inputs and, by the engine, outputs.
        const secretKeys = secretHostFields(secretPaths, config.name, Object.keys(inputs));
        const fileKeys = secretFileFields(secretPaths, config.name, inputs.secrets ?? {});
        const host = new Host(config.name, secretHostArgs(inputs, secretKeys, fileKeys), {
            additionalSecretOutputs: secretKeys,
            ...(before.length ? { dependsOn: before } : {}),
        });
        const hookSecret = secretHostFields(secretPaths, config.name, ["hooks"]).length > 0;
        const connection = connectionOf(inputs);
        const connectionArgs = Object.fromEntries(
            Object.entries(connection).map(([key, value]) => [key, secretKeys.includes(key) ? pulumi.secret(value) : value]),
        ) as unknown as ReturnType<typeof connectionOf>;
        hosts[config.name] = host;
        for (const hook of config.hooks) {
            // Runs after the host is deployed, and again whenever its generation or system changes.
            new Hook(
                `${config.name}-${hook.name}`,
                {
                    ...connectionArgs,
                    hook: hook.name,
                    command: hookSecret ? pulumi.secret([...hook.command]) : [...hook.command],
                    runAs: hookSecret && hook.runAs !== undefined ? pulumi.secret(hook.runAs) : hook.runAs,
                    trigger: pulumi.interpolate`${host.generation}:${host.storePath}`,
                },
                { parent: host, dependsOn: [host], additionalSecretOutputs: Object.keys(connection).filter((key) => secretKeys.includes(key)) },
            );
        }
        for (const overlap of overlaps.filter((o) => o.host === config.name)) {
            void pulumi.log.warn(
                `${config.name} is also deployed by stack ${overlap.otherStack} (as ${overlap.otherHost}): ` +
                    "two stacks deploying one server overwrite each other's systems; keep each server in one stack",
                host,
            );
        }
        if (pin) {
            // Flagged in every preview and deploy until `rollback --clear` removes the pin.
            void pulumi.log.warn(
                `${config.name} is pinned to ${pin.storePath}${pin.generation ? ` (generation ${pin.generation})` : ""}` +
                    `${pin.reason ? `: ${pin.reason}` : ""}; its configuration (${inputs.pin?.configuredStorePath}) is not deployed ` +
                    `until \`npm run rollback -- --clear --hosts ${config.name}\``,
                host,
            );
        }
    }
    return {
        hosts: Object.fromEntries(
            Object.entries(hosts).map(([name, host]) => [
                name,
                { storePath: host.storePath, generation: host.generation, nixosVersion: host.nixosVersion },
            ]),
        ),
    };
};
