// Host names and tags. A host's name is the name of its file in hosts/ and doubles as the Pulumi
// resource name, the default Nix attribute (nixosConfigurations.<name>) and often an ssh alias,
// so it follows the strictest of those: a lowercase DNS label that starts with a letter (Nix
// identifiers cannot start with a digit).
import { z } from "zod";
import { expecting, matching } from "./rules";

export const HOST_NAME_PATTERN = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const HOST_NAME_RULE =
    "a host name: lowercase letters, digits and '-', starting with a letter, not ending with '-', at most 63 characters";

/** Tags use the same alphabet so `@tag` selectors never need quoting. */
export const TAG_PATTERN = HOST_NAME_PATTERN;
export const TAG_RULE = "a tag: lowercase letters, digits and '-', starting with a letter, not ending with '-'";

export function isHostName(value: string): boolean {
    return HOST_NAME_PATTERN.test(value);
}

export function isTag(value: string): boolean {
    return TAG_PATTERN.test(value);
}

export const hostName = () => matching(HOST_NAME_PATTERN, HOST_NAME_RULE);
export const tag = () => matching(TAG_PATTERN, TAG_RULE);

/** A host name, or `@tag` for every host with that tag. */
export const hostSelector = () =>
    z.string(expecting('a host name or "@tag"')).refine(isSelector, {
        ...expecting('a host name or "@tag"'),
        params: { hint: HOST_NAME_RULE.replace(/^a host name: /, "names and tags use ") },
    });

export function isSelector(value: string): boolean {
    return value.startsWith("@") ? TAG_PATTERN.test(value.slice(1)) : HOST_NAME_PATTERN.test(value);
}
