// Hooks: named commands run on the host around a deployment (reserved; validated now so host
// files can carry them). argv only, never a shell string, so nothing needs quoting.
import { z } from "zod";
import { argv, describeValue, expecting, failure, listOf, matching } from "./rules";
import { userName } from "./sshRules";

export const hookSchema = z.strictObject(
    {
        name: matching(/^[a-z][a-z0-9-]*$/, "a hook name: lowercase letters, digits and '-'"),
        command: argv(),
        /** Run as this user instead of the deploy user (through sudo -n -u). */
        runAs: userName().optional(),
    },
    expecting("a mapping with name, command, runAs"),
);

/** Hook names are how logs and later issues refer to a hook, so they must be unique. */
export const hooksSchema = listOf(hookSchema, "a list of hooks").superRefine((hooks, context) => {
    const seen = new Set<string>();
    hooks.forEach((hook, index) => {
        if (seen.has(hook.name)) {
            context.addIssue({ code: "custom", path: [index, "name"], ...failure(`duplicate hook name ${describeValue(hook.name)}`) });
        }
        seen.add(hook.name);
    });
});

export type HookInput = z.input<typeof hookSchema>;
export type Hook = z.output<typeof hookSchema>;
