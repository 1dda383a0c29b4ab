// SSH key pairs: the deployer's client key and each host's ed25519 host key. Generated once and
// kept until `destroy`, so known_hosts stays valid across restarts.
import * as fs from "node:fs";
import * as path from "node:path";
import { ProcessRunner, runChecked } from "../src/process/runner";

/** Makes `file` (+ .pub) unless present; returns the public key line. */
export async function ensureKeyPair(runner: ProcessRunner, file: string, comment: string): Promise<string> {
    if (!fs.existsSync(file) || !fs.existsSync(`${file}.pub`)) {
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
        fs.rmSync(file, { force: true });
        fs.rmSync(`${file}.pub`, { force: true });
        await runChecked(runner, ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
    }
    fs.chmodSync(file, 0o600);
    return fs.readFileSync(`${file}.pub`, "utf8").trim();
}

/** "ssh-ed25519 AAAA…" without the comment (what known_hosts needs). */
export function keyWithoutComment(publicKeyLine: string): string {
    return publicKeyLine.split(/\s+/).slice(0, 2).join(" ");
}
