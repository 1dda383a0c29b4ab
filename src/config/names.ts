// Host names and tags. A host's name is the name of its file in hosts/ and doubles as the Pulumi
// resource name, the default Nix attribute (nixosConfigurations.<name>) and often an ssh alias,
// so it follows the strictest of those: a lowercase DNS label that starts with a letter (Nix
// identifiers cannot start with a digit).
import { matching } from "./rules";

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
