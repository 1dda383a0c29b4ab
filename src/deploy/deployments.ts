// A host's recorded history read the way Nix profiles work: deployments of the configuration are
// the steps (like generations); a rollback moves back along them without becoming a step of its
// own. So `rollback` twice goes back twice, and a deploy after a rollback is the newest step.
import type { DeploymentRecord } from "../provider/hostInputs";

/**
 * Whether a record is not a step of its own: a rollback (records say so in kind; older ones do
 * not), or any record that went back to a generation an older record had already made (same
 * generation, same system). A deploy of the configuration does that when the newest generation
 * already holds it (nix-env reuses it: `rollback --clear`, or a pin dropped from the config), so
 * it returns to that step instead of becoming a second one.
 */
export function isRollbackRecord(history: readonly DeploymentRecord[], index: number): boolean {
    const entry = history[index];
    if (!entry) return false;
    if (entry.kind === "rollback") return true;
    if (entry.generation === null) return false;
    return history.slice(index + 1).some((older) => older.generation === entry.generation && older.storePath === entry.storePath);
}

/** The deployments of the configuration, newest first: the steps a rollback counts. */
export function deploymentSteps(history: readonly DeploymentRecord[]): DeploymentRecord[] {
    return history.filter((_, index) => !isRollbackRecord(history, index));
}

/**
 * The step the host is on now (index into deploymentSteps): the newest record's, or for a rollback
 * the deployment it went back to. Undefined when the history is empty or a rollback's target has
 * aged out of it.
 */
export function currentStep(history: readonly DeploymentRecord[]): number | undefined {
    const steps = deploymentSteps(history);
    const current = history[0];
    if (!current) return undefined;
    if (!isRollbackRecord(history, 0)) return 0;
    let index = current.rollbackTo === undefined ? -1 : steps.findIndex((step) => step.activatedAt === current.rollbackTo);
    if (index < 0) index = steps.findIndex((step) => step.generation === current.generation && step.storePath === current.storePath);
    return index < 0 ? undefined : index;
}

/** The deployment a record stands for: itself, or for a rollback the deployment it went back to. */
export function stepOf(history: readonly DeploymentRecord[], entry: DeploymentRecord): DeploymentRecord {
    const index = history.indexOf(entry);
    if (index < 0 || !isRollbackRecord(history, index)) return entry;
    const steps = deploymentSteps(history);
    return (
        (entry.rollbackTo !== undefined ? steps.find((step) => step.activatedAt === entry.rollbackTo) : undefined) ??
        steps.find((step) => step.generation === entry.generation && step.storePath === entry.storePath) ??
        entry
    );
}

/**
 * The newest records holding at most `steps` deployments of the configuration, with the rollbacks
 * among them: rollbacks do not push deployments out of the bounded history. At most 2 × steps
 * records in all, so repeated rollbacks cannot grow the state without end.
 */
export function trimHistory(history: readonly DeploymentRecord[], steps: number): DeploymentRecord[] {
    const kept: DeploymentRecord[] = [];
    let counted = 0;
    for (let index = 0; index < history.length && kept.length < 2 * steps; index++) {
        if (!isRollbackRecord(history, index)) {
            if (counted === steps) break;
            counted += 1;
        }
        kept.push(history[index]!);
    }
    return kept;
}
