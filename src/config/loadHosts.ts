// Reads hosts/*.yaml into HostConfigs. Every problem in every file is collected (YAML syntax,
// duplicate keys, schema) with file, line and field, and reported together in one
// FleetConfigError, so one run shows everything that needs fixing.
import * as fs from "node:fs";
import * as path from "node:path";
import { LineCounter, parseDocument, type YAMLError } from "yaml";
import type { FleetError } from "../errors";
import { FleetConfigError, configProblem, throwIfProblems } from "./configError";
import { hostFileSchema, resolveHost, type HostConfig } from "./hostSchema";
import { fieldProblems, formatFieldPath } from "./issues";
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

/** Loads and validates every host file in `dir`; throws a FleetConfigError listing all problems. */
export async function loadHostFiles(dir: string, options: LoadHostsOptions = {}): Promise<HostConfig[]> {
    const { hostsDir, baseDir } = locate(dir, options);
    const names = await readHostDir(hostsDir);
    const files = await Promise.all(
        names.map(async (name) => ({ path: path.join(hostsDir, name), text: await fs.promises.readFile(path.join(hostsDir, name), "utf8") })),
    );
    return parseHostFiles(files, { baseDir, hostsDir });
}

/** Synchronous variant of loadHostFiles, for code that cannot await (e.g. top-level Pulumi setup). */
export function loadHostFilesSync(dir: string, options: LoadHostsOptions = {}): HostConfig[] {
    const { hostsDir, baseDir } = locate(dir, options);
    const names = readHostDirSync(hostsDir);
    const files = names.map((name) => ({ path: path.join(hostsDir, name), text: fs.readFileSync(path.join(hostsDir, name), "utf8") }));
    return parseHostFiles(files, { baseDir, hostsDir });
}

/** Validates already-read host files (sorted by name in the result); throws on any problem. */
export function parseHostFiles(files: readonly HostFileText[], options: { baseDir: string; hostsDir?: string }): HostConfig[] {
    const problems: FleetError[] = [];
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
    if (files.length === 0) {
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
    const lineCounter = new LineCounter();
    const document = parseDocument(file.text, { lineCounter, prettyErrors: false, uniqueKeys: true });
    const source: YamlSource = { document, lineCounter };
    if (document.errors.length > 0) {
        return { problems: [...problems, ...document.errors.map((error) => yamlProblem(error, source, shownFile, name))] };
    }
    let data: unknown;
    try {
        data = document.toJS({ maxAliasCount: 100 });
    } catch (error) {
        return { problems: [...problems, configProblem({ message: `cannot read YAML: ${(error as Error).message}`, file: shownFile, line: 1, host: name })] };
    }
    const parsed = hostFileSchema.safeParse(data);
    if (!parsed.success) {
        const schemaProblems = fieldProblems(parsed.error.issues, hostFileSchema, data).map((problem) =>
            configProblem({
                message: problem.message,
                hint: problem.hint ?? fieldHint(problem.path),
                file: shownFile,
                line: lineOfPath(source, problem.path, problem.kind === "unknown-key" ? "key" : "value"),
                field: formatFieldPath(problem.path) || undefined,
                host: name,
            }),
        );
        return { problems: [...problems, ...byLine(schemaProblems)] };
    }
    if (problems.length > 0) return { problems };
    return { host: resolveHost(parsed.data, { name, file: file.path, baseDir }), problems };
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

type DirEntry = Pick<fs.Dirent, "name" | "isFile">;

async function readHostDir(hostsDir: string): Promise<string[]> {
    try {
        return hostFileNames(await fs.promises.readdir(hostsDir, { withFileTypes: true }));
    } catch (error) {
        throw missingDirError(hostsDir, error);
    }
}

function readHostDirSync(hostsDir: string): string[] {
    try {
        return hostFileNames(fs.readdirSync(hostsDir, { withFileTypes: true }));
    } catch (error) {
        throw missingDirError(hostsDir, error);
    }
}

// Dotfiles are skipped: editors leave backups like .alpha.yaml.un~ next to the real file.
function hostFileNames(entries: readonly DirEntry[]): string[] {
    return entries
        .filter((entry) => entry.isFile() && !entry.name.startsWith(".") && HOST_FILE_EXTENSIONS.some((ext) => entry.name.endsWith(ext)))
        .map((entry) => entry.name)
        .sort();
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
