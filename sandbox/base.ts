// What every sandbox host boots from, read-only and shared: the base root (a minimal Debian with
// systemd, built once by base/build.sh and cached), under the sandbox layer (base/layer: the
// units, generator, sshd, sudo and Nix settings that make it a NixOS-shaped host). The layer is
// copied into the fleet dir under its content hash, so running hosts keep the one they booted.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ProcessRunner } from "../src/process/runner";
import { sourceDir } from "./layout";

const LAYER_SOURCE = path.join(sourceDir, "base", "layer");

/** Builds the base root when missing (about a minute, once per machine); returns its path. */
export async function ensureBaseRoot(runner: ProcessRunner, log: (line: string) => void): Promise<string> {
    const script = path.join(sourceDir, "base", "build.sh");
    const known = await runner(["bash", script, "--path"]);
    if (known.code === 0) return known.stdout.trim();
    log("building the sandbox base root (once per machine, about a minute)");
    const built = await runner(["bash", script], { timeoutMs: 15 * 60_000 });
    if (built.code !== 0) throw new Error(`building the sandbox base root failed:\n${built.stderr.trim()}`);
    return built.stdout.trim();
}

interface LayerEntry {
    rel: string;
    kind: "dir" | "file" | "link";
    mode: number;
    content: string;
}

function layerEntries(dir: string, rel = ""): LayerEntry[] {
    return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name)).flatMap((e) => {
        const sub = path.join(rel, e.name);
        const full = path.join(dir, sub);
        if (e.isSymbolicLink()) return [{ rel: sub, kind: "link" as const, mode: 0o777, content: fs.readlinkSync(full) }];
        if (e.isDirectory()) return [{ rel: sub, kind: "dir" as const, mode: 0o755, content: "" }, ...layerEntries(dir, sub)];
        // Modes are set here, not taken from the checkout (git keeps only the executable bit).
        const executable = (fs.statSync(full).mode & 0o100) !== 0;
        const mode = sub.startsWith("etc/sudoers.d/") ? 0o440 : executable ? 0o755 : 0o644;
        return [{ rel: sub, kind: "file" as const, mode, content: fs.readFileSync(full, "utf8") }];
    });
}

/** Installs the sandbox layer into `<layersDir>/<hash>` (once per content); returns its path. */
export function installLayer(layersDir: string): string {
    const entries = layerEntries(LAYER_SOURCE);
    const hash = createHash("sha256").update(JSON.stringify(entries)).digest("hex").slice(0, 16);
    const target = path.join(layersDir, hash);
    const marker = `${target}.complete`; // beside the layer: inside it, it would show in every host's /
    if (fs.existsSync(marker)) return target;
    const tmp = `${target}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true, mode: 0o755 });
    for (const entry of entries) {
        const file = path.join(tmp, entry.rel);
        if (entry.kind === "dir") fs.mkdirSync(file, { mode: entry.mode });
        else if (entry.kind === "link") fs.symlinkSync(entry.content, file);
        else fs.writeFileSync(file, entry.content, { mode: entry.mode });
        if (entry.kind !== "link") fs.chmodSync(file, entry.mode);
    }
    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(tmp, target);
    fs.writeFileSync(marker, "");
    return target;
}
