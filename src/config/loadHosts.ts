// Reads hosts/*.yaml into HostConfigs. Every problem in every file is collected (YAML syntax,
// duplicate keys, schema) with file, line and field, and reported together in one
// FleetConfigError, so one run shows everything that needs fixing.
import * as fs from "node:fs";
import * as path from "node:path";
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document, type Node, type YAMLError } from "yaml";
import type { FleetError } from "../errors";
import { FleetConfigError, configProblem, throwIfProblems } from "./configError";
import { hostFileSchema, resolveHost, type HostConfig } from "./hostSchema";
import { countFieldProblems, fieldProblems, formatFieldPath } from "./issues";
import { HOST_NAME_RULE, isHostName } from "./names";
import { keyPathAtOffset, lastKeyBefore, lineOfOffset, lineOfPath, type YamlSource } from "./yamlLocation";

export interface LoadHostsOptions {
    /**
     * Project root: relative paths inside host files (and a relative `dir`) are resolved against
     * it. Defaults to the parent of the hosts directory, which is the project root in the usual
     * layout (<root>/hosts). Never the current working directory.
     */
    baseDir?: string;
}

/** A host file's text and where it came from. */
export interface HostFileText {
    /** Absolute path. */
    path: string;
    text: string;
}

export const HOST_FILE_EXTENSIONS = [".yaml", ".yml"] as const;
const DOCS_HINT = "see docs/host-config.md";

/** Host files larger than this are refused unread: a host file holds a few dozen fields. */
export const MAX_HOST_FILE_BYTES = 256 * 1024;

/** Loads and validates every host file in `dir`; throws a FleetConfigError listing all problems. */
export async function loadHostFiles(dir: string, options: LoadHostsOptions = {}): Promise<HostConfig[]> {
    const { hostsDir, baseDir } = locate(dir, options);
    const entries = await readHostDir(hostsDir);
    const read = await Promise.all(entries.map((entry) => readHostFile(entry, baseDir)));
    return parseHostFiles(read.flatMap((r) => r.file ?? []), { baseDir, hostsDir, problems: read.flatMap((r) => r.problem ?? []) });
}

/** Synchronous variant of loadHostFiles, for code that cannot await (e.g. top-level Pulumi setup). */
export function loadHostFilesSync(dir: string, options: LoadHostsOptions = {}): HostConfig[] {
    const { hostsDir, baseDir } = locate(dir, options);
    const read = readHostDirSync(hostsDir).map((entry) => readHostFileSync(entry, baseDir));
    return parseHostFiles(read.flatMap((r) => r.file ?? []), { baseDir, hostsDir, problems: read.flatMap((r) => r.problem ?? []) });
}

interface ReadResult {
    file?: HostFileText;
    problem?: FleetError;
}

/** An entry of the hosts directory that looks like a host file; `stat` follows symbolic links. */
interface HostEntry {
    path: string;
    symlink: boolean;
}

async function readHostFile(entry: HostEntry, baseDir: string): Promise<ReadResult> {
    const stat = await fs.promises.stat(entry.path).catch((error: NodeJS.ErrnoException) => error);
    const problem = entryProblem(entry, stat, baseDir);
    if (problem || stat instanceof Error) return { problem };
    return { file: { path: entry.path, text: await fs.promises.readFile(entry.path, "utf8") } };
}

function readHostFileSync(entry: HostEntry, baseDir: string): ReadResult {
    let stat: fs.Stats | NodeJS.ErrnoException;
    try {
        stat = fs.statSync(entry.path);
    } catch (error) {
        stat = error as NodeJS.ErrnoException;
    }
    const problem = entryProblem(entry, stat, baseDir);
    if (problem || stat instanceof Error) return { problem };
    return { file: { path: entry.path, text: fs.readFileSync(entry.path, "utf8") } };
}

/**
 * Why an entry is not read: a symbolic link that leads nowhere or to something other than a file,
 * something other than a file (a FIFO would block the read forever), or a file over the size limit.
 * Symbolic links to files are followed.
 */
function entryProblem(entry: HostEntry, stat: fs.Stats | NodeJS.ErrnoException, baseDir: string): FleetError | undefined {
    const file = displayPath(entry.path, baseDir);
    const host = hostNameOf(entry.path);
    const link = entry.symlink ? `is a symbolic link to ${linkTarget(entry.path)}, which ` : "";
    if (stat instanceof Error) {
        const why = stat.code === "ENOENT" ? "does not exist" : `cannot be read (${stat.code ?? stat.message})`;
        return configProblem({ message: `${link || "host file "}${why}`, file, host, hint: "point the link at an existing host file, or remove it" });
    }
    if (!stat.isFile()) {
        return configProblem({ message: `${link || ""}is not a regular file`, file, host, hint: "host files are plain YAML files (symbolic links to them are followed)" });
    }
    // A link committed to the repository could make a preview print any file of the deployer
    // (/etc/shadow, a passphrase file, a private key) line by line in its problems.
    if (entry.symlink && !insideDir(entry.path, baseDir)) {
        return configProblem({
            message: `${link}is outside the project (${baseDir}), so it is not read`,
            file,
            host,
            hint: "keep host files in the repository: copy the file into the project, or link to a file inside it",
        });
    }
    if (stat.size > MAX_HOST_FILE_BYTES) {
        return configProblem({
            message: `${link}is ${formatBytes(stat.size)}; host files are limited to ${formatBytes(MAX_HOST_FILE_BYTES)}`,
            file,
            host,
            hint: "a host file holds a few fields; is this the right file?",
        });
    }
    return undefined;
}

/** Whether the file a link leads to lies inside dir (both resolved, symlinks and all). */
function insideDir(file: string, dir: string): boolean {
    try {
        const relative = path.relative(fs.realpathSync(dir), fs.realpathSync(file));
        return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative);
    } catch {
        return false;
    }
}

function linkTarget(file: string): string {
    try {
        return fs.readlinkSync(file);
    } catch {
        return "(unreadable)";
    }
}

function formatBytes(bytes: number): string {
    return bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
}

/** Validates already-read host files (sorted by name in the result); throws on any problem. */
export function parseHostFiles(files: readonly HostFileText[], options: { baseDir: string; hostsDir?: string; problems?: readonly FleetError[] }): HostConfig[] {
    const problems: FleetError[] = [...(options.problems ?? [])];
    const hosts: HostConfig[] = [];
    const seen = new Map<string, string>();
    for (const file of [...files].sort((a, b) => a.path.localeCompare(b.path))) {
        const result = parseHostFile(file, options.baseDir);
        problems.push(...result.problems);
        if (!result.host) continue;
        const previous = seen.get(result.host.name);
        if (previous !== undefined) {
            problems.push(duplicateHostProblem(result.host.name, previous, file.path, options.baseDir));
            continue;
        }
        seen.set(result.host.name, file.path);
        hosts.push(result.host);
    }
    if (files.length === 0 && problems.length === 0) {
        const where = options.hostsDir ? displayPath(options.hostsDir, options.baseDir) : "the hosts directory";
        problems.push(configProblem({ message: `no host files (*.yaml, *.yml) in ${where}`, file: where, hint: "add one file per host, e.g. hosts/web1.yaml with `address: web1.example.org`" }));
    }
    throwIfProblems(problems, "invalid host configuration");
    return hosts.sort((a, b) => a.name.localeCompare(b.name));
}

export interface ParsedHostFile {
    host?: HostConfig;
    problems: FleetError[];
}

/** Parses one host file; never throws, problems are returned. */
export function parseHostFile(file: HostFileText, baseDir: string): ParsedHostFile {
    const shownFile = displayPath(file.path, baseDir);
    const name = hostNameOf(file.path);
    const problems: FleetError[] = [];
    if (!isHostName(name)) {
        problems.push(
            configProblem({
                message: `file name gives host name "${name}", expected ${HOST_NAME_RULE}`,
                file: shownFile,
                hint: "the file name is the host's name; rename the file",
            }),
        );
    }
    const bytes = Buffer.byteLength(file.text, "utf8");
    if (bytes > MAX_HOST_FILE_BYTES) {
        const hint = "a host file holds a few fields; is this the right file?";
        return { problems: [...problems, configProblem({ message: `is ${formatBytes(bytes)}; host files are limited to ${formatBytes(MAX_HOST_FILE_BYTES)}`, file: shownFile, host: name, hint })] };
    }
    const lineCounter = new LineCounter();
    let document: Document.Parsed;
    try {
        // Duplicate keys are found by duplicateKeyProblems: the yaml library's own check compares
        // every key with every other one, which a large file turns into minutes.
        document = parseDocument(file.text, { lineCounter, prettyErrors: false, uniqueKeys: false });
    } catch (error) {
        // e.g. nesting deep enough to exhaust the stack
        return { problems: [...problems, configProblem({ message: `cannot read YAML: ${(error as Error).message}`, file: shownFile, line: 1, host: name })] };
    }
    const source: YamlSource = { document, lineCounter };
    if (document.errors.length > 0) {
        return { problems: [...problems, ...capped(document.errors.map((error) => yamlProblem(error, source, shownFile, name)), shownFile, name)] };
    }
    const duplicates = duplicateKeyProblems(source, shownFile, name);
    if (duplicates.length > 0) return { problems: [...problems, ...duplicates] };
    let data: unknown;
    try {
        data = document.toJS({ maxAliasCount: 100 });
    } catch (error) {
        return { problems: [...problems, configProblem({ message: `cannot read YAML: ${(error as Error).message}`, file: shownFile, line: 1, host: name })] };
    }
    const parsed = hostFileSchema.safeParse(data);
    if (!parsed.success) {
        const found = fieldProblems(parsed.error.issues, hostFileSchema, data, MAX_PROBLEMS_PER_FILE);
        const total = countFieldProblems(parsed.error.issues);
        const schemaProblems = found.map((problem) =>
            configProblem({
                message: problem.message,
                hint: problem.hint ?? fieldHint(problem.path),
                file: shownFile,
                line: lineOfPath(source, problem.path, problem.kind === "unknown-key" ? "key" : "value"),
                field: formatFieldPath(problem.path) || undefined,
                host: name,
            }),
        );
        return { problems: [...problems, ...byLine(schemaProblems), ...moreProblems(total - found.length, shownFile, name)] };
    }
    if (problems.length > 0) return { problems };
    return { host: resolveHost(parsed.data, { name, file: file.path, baseDir }), problems };
}

/** Problems reported per file; a file with more gets one line saying how many were left out. */
export const MAX_PROBLEMS_PER_FILE = 50;

function moreProblems(count: number, file: string, host: string): FleetError[] {
    if (count <= 0) return [];
    return [configProblem({ message: `and ${count} more problem${count === 1 ? "" : "s"} in this file`, file, host, hint: "fix the ones above first" })];
}

function capped(problems: FleetError[], file: string, host: string): FleetError[] {
    return [...problems.slice(0, MAX_PROBLEMS_PER_FILE), ...moreProblems(problems.length - MAX_PROBLEMS_PER_FILE, file, host)];
}

/** Keys that appear twice in one mapping, found in one pass (a Set per mapping). */
function duplicateKeyProblems(source: YamlSource, file: string, host: string): FleetError[] {
    const problems: FleetError[] = [];
    let count = 0;
    const visit = (node: unknown, keyPath: PropertyKey[]): void => {
        if (isMap(node)) {
            const seen = new Set<string>();
            for (const pair of node.items) {
                const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
                if (seen.has(key)) {
                    count += 1;
                    if (problems.length < MAX_PROBLEMS_PER_FILE) {
                        const start = (pair.key as Node | null)?.range?.[0] ?? 0;
                        problems.push(
                            configProblem({
                                message: `duplicate key "${key.length > 60 ? `${key.slice(0, 57)}...` : key}"`,
                                hint: "each field may appear only once in a mapping; remove or merge the repeated one",
                                file,
                                line: lineOfOffset(source, start),
                                field: formatFieldPath([...keyPath, key]),
                                host,
                            }),
                        );
                    }
                }
                seen.add(key);
                visit(pair.value, [...keyPath, key]);
            }
        } else if (isSeq(node)) {
            node.items.forEach((item, index) => visit(item, [...keyPath, index]));
        }
    };
    visit(source.document.contents, []);
    return [...problems, ...moreProblems(count - problems.length, file, host)];
}

function yamlProblem(error: YAMLError, source: YamlSource, file: string, host: string): FleetError {
    const line = lineOfOffset(source, error.pos[0]);
    if (error.code === "DUPLICATE_KEY") {
        const keyPath = keyPathAtOffset(source, error.pos[0]);
        const field = keyPath && formatFieldPath(keyPath);
        return configProblem({
            message: field ? `duplicate key "${String(keyPath[keyPath.length - 1])}"` : "duplicate key",
            hint: "each field may appear only once in a mapping; remove or merge the repeated one",
            file,
            line,
            field,
            host,
        });
    }
    return configProblem({
        message: `invalid YAML: ${error.message}`,
        hint: "check indentation (spaces, not tabs), quoting and that every `key:` is followed by a value",
        file,
        line,
        field: lastKeyBefore(source, error.pos[0]),
        host,
    });
}

function byLine(problems: FleetError[]): FleetError[] {
    return [...problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

function fieldHint(path: readonly PropertyKey[]): string {
    const top = path.find((key) => typeof key === "string");
    return top === undefined ? `${DOCS_HINT} for the fields of a host file` : `${DOCS_HINT} ("${String(top)}")`;
}

function duplicateHostProblem(name: string, first: string, second: string, baseDir: string): FleetError {
    return configProblem({
        message: `host "${name}" is defined twice: ${displayPath(first, baseDir)} and ${displayPath(second, baseDir)}`,
        file: displayPath(second, baseDir),
        host: name,
        hint: "keep one file per host",
    });
}

function locate(dir: string, options: LoadHostsOptions): { hostsDir: string; baseDir: string } {
    if (options.baseDir !== undefined) {
        const baseDir = path.resolve(options.baseDir);
        return { baseDir, hostsDir: path.resolve(baseDir, dir) };
    }
    const hostsDir = path.resolve(dir);
    return { hostsDir, baseDir: path.dirname(hostsDir) };
}

type DirEntry = Pick<fs.Dirent, "name" | "isSymbolicLink">;

async function readHostDir(hostsDir: string): Promise<HostEntry[]> {
    try {
        return hostEntries(hostsDir, await fs.promises.readdir(hostsDir, { withFileTypes: true }));
    } catch (error) {
        throw missingDirError(hostsDir, error);
    }
}

function readHostDirSync(hostsDir: string): HostEntry[] {
    try {
        return hostEntries(hostsDir, fs.readdirSync(hostsDir, { withFileTypes: true }));
    } catch (error) {
        throw missingDirError(hostsDir, error);
    }
}

// Dotfiles are skipped: editors leave backups like .alpha.yaml.un~ next to the real file. Every
// other *.yaml / *.yml entry is a host file, or a problem saying why it cannot be one.
function hostEntries(hostsDir: string, entries: readonly DirEntry[]): HostEntry[] {
    return entries
        .filter((entry) => !entry.name.startsWith(".") && HOST_FILE_EXTENSIONS.some((ext) => entry.name.endsWith(ext)))
        .map((entry) => ({ path: path.join(hostsDir, entry.name), symlink: entry.isSymbolicLink() }))
        .sort((a, b) => a.path.localeCompare(b.path));
}

function missingDirError(hostsDir: string, error: unknown): FleetConfigError {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `cannot be read (${(error as Error).message})`;
    const problem = configProblem({
        message: `hosts directory ${hostsDir} ${reason}`,
        file: hostsDir,
        hint: 'create it with one <name>.yaml per host, or set "nixos-fleet:hostsDir" in the stack config',
    });
    return new FleetConfigError([problem], "invalid host configuration");
}

/** `hosts/alpha.yaml` → `alpha` */
export function hostNameOf(file: string): string {
    const base = path.basename(file);
    const ext = HOST_FILE_EXTENSIONS.find((candidate) => base.endsWith(candidate));
    return ext ? base.slice(0, -ext.length) : base;
}

/** Paths in messages are relative to the project root when inside it: shorter and stable. */
function displayPath(file: string, baseDir: string): string {
    const relative = path.relative(baseDir, file);
    return relative && !relative.startsWith("..") && !path.isAbsolute(relative) ? relative : file;
}
