// Installs the toy flake template into a fleet's state dir. It lives outside git there because a
// flake inside a git work tree only sees tracked files (the knob files are not).
import * as fs from "node:fs";
import * as path from "node:path";
import { sourceDir } from "./layout";

const TEMPLATE_FILES = ["flake.nix", "switch-to-configuration.sh"] as const;

/** Copies the template files when they differ (so a template edit reaches existing fleets). */
export function installFlake(flakeDir: string): void {
    fs.mkdirSync(path.join(flakeDir, "hosts"), { recursive: true });
    for (const file of TEMPLATE_FILES) {
        const source = fs.readFileSync(path.join(sourceDir, "flake", file));
        const target = path.join(flakeDir, file);
        if (fs.existsSync(target) && fs.readFileSync(target).equals(source)) continue;
        fs.writeFileSync(target, source);
    }
}

/** Copies the host-side tools (nixos-rebuild stand-in), mounted read-only in every host. */
export function installTools(toolsDir: string): void {
    fs.mkdirSync(toolsDir, { recursive: true });
    const from = path.join(sourceDir, "host", "bin");
    for (const file of fs.readdirSync(from)) {
        fs.copyFileSync(path.join(from, file), path.join(toolsDir, file));
        fs.chmodSync(path.join(toolsDir, file), 0o755);
    }
}
