// Rules for the fields that end up in Nix commands and expressions.
import { z } from "zod";
import { describeValue, expecting, failure, matching } from "./rules";

const FLAKE_RULE = 'a flake reference such as ".", "path:./flake" or "github:owner/repo"';

export function flakeRef() {
    return z
        .string(expecting(FLAKE_RULE))
        .min(1, expecting(FLAKE_RULE))
        .superRefine((value, context) => {
            if (value.includes("#")) {
                const [flake, attribute] = value.split("#", 2);
                context.addIssue({
                    code: "custom",
                    ...failure(`flake reference ${describeValue(value)} contains an attribute`, `write "flake: ${flake}" and "attribute: ${attribute}"`),
                });
            } else if (/\s|[\u0000-\u001f\u007f]/.test(value) || value.startsWith("-")) {
                context.addIssue({ code: "custom", ...failure(`expected ${FLAKE_RULE}, got ${describeValue(value)}`) });
            }
        });
}

// Nix keywords cannot be used as bare attribute names.
const NIX_KEYWORDS = new Set(["assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with"]);
const NIX_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const ATTRIBUTE_RULE = 'a dotted Nix attribute path of plain identifiers, e.g. "nixosConfigurations.web1"';

/**
 * The attribute is spliced into a Nix expression (`<flake>#<attribute>` and `--expr` calls), so
 * only plain identifiers pass: no quotes, no interpolation, no keywords.
 */
export function nixAttributePath() {
    return z
        .string(expecting(ATTRIBUTE_RULE))
        .refine(isSafeAttributePath, {
            ...expecting(ATTRIBUTE_RULE),
            params: {
                hint: "each part must match [A-Za-z_][A-Za-z0-9_-]* and not be a Nix keyword, because the path is inserted into a Nix expression",
            },
        });
}

export function isSafeAttributePath(value: string): boolean {
    return value.split(".").every((part) => NIX_IDENTIFIER.test(part) && !NIX_KEYWORDS.has(part));
}

/** /nix/store/<32 base-32 characters>-<name>: Nix's base-32 alphabet has no e, o, t or u. */
export const STORE_PATH_PATTERN = /^\/nix\/store\/[0-9abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]*$/;
export const storePath = () =>
    matching(STORE_PATH_PATTERN, "a top-level Nix store path, /nix/store/<32-character hash>-<name>");

/** nix-collect-garbage --delete-older-than only understands days. */
export const deleteOlderThan = () => matching(/^[1-9][0-9]*d$/, 'an age in days such as "30d"');
