import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { remoteCommand, shellQuote } from "../../../src/ssh/quote";

/** What a real POSIX sh makes of `command`: the words it passes to printf, NUL-separated. */
function wordsSeenBySh(args: string[]): string[] {
    const out = spawnSync("sh", ["-c", `printf '%s\\0' ${remoteCommand(args)}`], { encoding: "utf8" });
    expect(out.status).toBe(0);
    return out.stdout.split("\0").slice(0, -1);
}

describe("shellQuote", () => {
    it("leaves plain words (paths, flags, key=value) unquoted", () => {
        expect(shellQuote("/nix/var/nix/profiles/system")).toBe("/nix/var/nix/profiles/system");
        expect(shellQuote("--print-invalid")).toBe("--print-invalid");
        expect(shellQuote("user@host:22")).toBe("user@host:22");
    });

    it("single-quotes words with spaces", () => {
        expect(shellQuote("nix-command flakes")).toBe("'nix-command flakes'");
    });

    it("quotes the empty string so it stays one (empty) argument", () => {
        expect(shellQuote("")).toBe("''");
    });

    it("escapes single quotes by closing, escaping and reopening the quote", () => {
        expect(shellQuote("it's")).toBe("'it'\\''s'");
    });

    it("quotes $, backticks, globs and ~ so the remote shell expands nothing", () => {
        expect(shellQuote("$HOME")).toBe("'$HOME'");
        expect(shellQuote("`id`")).toBe("'`id`'");
        expect(shellQuote("*")).toBe("'*'");
        expect(shellQuote("~root")).toBe("'~root'");
    });

    it("quotes an injection attempt as one literal word", () => {
        expect(shellQuote("; rm -rf /")).toBe("'; rm -rf /'");
        expect(shellQuote("$(reboot)")).toBe("'$(reboot)'");
    });
});

describe("remoteCommand", () => {
    it("joins the quoted words with single spaces", () => {
        expect(remoteCommand(["nix-env", "-p", "/nix/var/nix/profiles/system", "--set", "a b"])).toBe(
            "nix-env -p /nix/var/nix/profiles/system --set 'a b'",
        );
    });

    it("refuses an empty argument list", () => {
        expect(() => remoteCommand([])).toThrow(/empty argument list/);
    });

    it("round-trips through a real sh: every tricky argument arrives as exactly one word", () => {
        const args = ["", "a b", "it's", "$HOME", "${PATH}", "`id`", "; rm -rf /", "a\nb", "\\", "'", "\"", "*", "x=y", "--", "ünï"];
        expect(wordsSeenBySh(args)).toEqual(args);
    });

    it("an injection attempt in an argument does not run a second command", () => {
        const out = spawnSync("sh", ["-c", remoteCommand(["echo", "x; echo INJECTED", "$(echo INJECTED)"])], { encoding: "utf8" });
        expect(out.stdout).toBe("x; echo INJECTED $(echo INJECTED)\n");
    });

    // A POSIX shell treats an unquoted first word "NAME=value" as a variable assignment, not as
    // the command to run: remoteCommand(["FOO=bar", "x"]) must run the program "FOO=bar" with
    // argument "x", not "x" with FOO set, so a first word containing "=" has to be quoted.
    it("a first word containing '=' is run as the command, not taken as an assignment", () => {
        const out = spawnSync("sh", ["-c", `${remoteCommand(["FOO=bar", "true"])} 2>&1; echo "exit=$?"`], { encoding: "utf8" });
        // sh must try to run the program "FOO=bar" (not found → 127), not `true` with FOO set.
        expect(out.stdout).toMatch(/exit=127/);
    });
});
