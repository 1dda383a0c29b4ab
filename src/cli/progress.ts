// What `deploy` and `rollback` show while the engine works: one line per host per phase (from the
// provider's progress messages), then a summary table built from the hosts' recorded outputs.
import type { EngineEvent } from "@pulumi/pulumi/automation";
import type { LastDeploy } from "../provider/hostInputs";
import { hostNameOfUrn } from "./stack";

export type HostResult = "deployed" | "unchanged" | "failed" | "planned" | "no change planned";

export interface HostSummary {
    host: string;
    result: HostResult;
    generationBefore: number | null;
    generationAfter: number | null;
    storePathBefore: string | null;
    storePathAfter: string | null;
    pathsCopied: number;
    bytesCopied: number;
    timings: Record<string, number>;
    error?: string;
}

interface HostRecord {
    op?: string;
    oldOutputs?: Record<string, unknown>;
    newOutputs?: Record<string, unknown>;
    newInputs?: Record<string, unknown>;
    errors: string[];
}

/** Collects engine events into per-host records, printing progress lines as they come. */
export class ProgressTracker {
    private readonly hosts = new Map<string, HostRecord>();
    readonly programErrors: string[] = [];
    readonly warnings: string[] = [];

    constructor(private readonly print: (line: string) => void) {}

    private record(host: string): HostRecord {
        let record = this.hosts.get(host);
        if (!record) {
            record = { errors: [] };
            this.hosts.set(host, record);
        }
        return record;
    }

    readonly onEvent = (event: EngineEvent): void => {
        const pre = event.resourcePreEvent?.metadata;
        if (pre) {
            const host = hostNameOfUrn(pre.urn);
            if (host) {
                const record = this.record(host);
                record.op = pre.op;
                record.oldOutputs = pre.old?.outputs;
                record.newInputs = pre.new?.inputs;
            }
        }
        const outputs = event.resOutputsEvent?.metadata;
        if (outputs) {
            const host = hostNameOfUrn(outputs.urn);
            if (host) {
                const record = this.record(host);
                record.op = outputs.op;
                record.newOutputs = outputs.new?.outputs;
            }
        }
        const diagnostic = event.diagnosticEvent;
        if (diagnostic) {
            const host = diagnostic.urn ? hostNameOfUrn(diagnostic.urn) : undefined;
            const message = diagnostic.message.trimEnd();
            if (diagnostic.severity === "error") {
                if (host) this.record(host).errors.push(message);
                else if (!/^update failed$|^preview failed$/.test(message.trim())) this.programErrors.push(message);
                this.print(host ? `[${host}] error: ${message}` : `error: ${message}`);
            } else if (diagnostic.severity === "warning") {
                this.warnings.push(message);
                this.print(host ? `[${host}] warning: ${message}` : `warning: ${message}`);
            } else if (diagnostic.severity !== "info" && diagnostic.severity !== "info#err") {
                // debug chatter from the engine and SDK
            } else if (host) {
                // The provider prefixes its lines with the host name.
                this.print(`[${host}] ${message.startsWith(`${host}: `) ? message.slice(host.length + 2) : message}`);
            } else if (message) {
                this.print(message);
            }
        }
    };

    summaries(hosts: readonly string[], planning: boolean): HostSummary[] {
        return hosts.map((host) => summarize(host, this.hosts.get(host) ?? { errors: [] }, planning));
    }
}

function num(value: unknown): number | null {
    return typeof value === "number" ? value : null;
}

function str(value: unknown): string | null {
    return typeof value === "string" ? value : null;
}

function summarize(host: string, record: HostRecord, planning: boolean): HostSummary {
    const old = record.oldOutputs ?? {};
    const changes = record.op !== undefined && record.op !== "same";
    const base: HostSummary = {
        host,
        result: "unchanged",
        generationBefore: num(old.generation),
        generationAfter: num(old.generation),
        storePathBefore: str(old.storePath),
        storePathAfter: str(old.storePath),
        pathsCopied: 0,
        bytesCopied: 0,
        timings: {},
    };
    if (record.errors.length) {
        return { ...base, result: "failed", error: record.errors.join("\n") };
    }
    if (planning) {
        return { ...base, result: changes ? "planned" : "no change planned", storePathAfter: str(record.newInputs?.storePath) ?? base.storePathAfter, generationAfter: null };
    }
    if (!changes || !record.newOutputs) return base;
    const last = (record.newOutputs.lastDeploy ?? {}) as Partial<LastDeploy>;
    return {
        ...base,
        result: "deployed",
        generationBefore: last.generationBefore ?? base.generationBefore,
        generationAfter: num(record.newOutputs.generation),
        storePathAfter: str(record.newOutputs.storePath),
        pathsCopied: last.pathsCopied ?? 0,
        bytesCopied: last.bytesCopied ?? 0,
        timings: last.timings ?? {},
    };
}

function bytes(n: number): string {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function seconds(ms: number | undefined): string {
    return ms === undefined ? "-" : `${(ms / 1000).toFixed(1)}s`;
}

const shortPath = (path: string | null): string => (path ? path.replace(/^\/nix\/store\/[a-z0-9]{32}-/, "") : "-");

/** The summary table for people. */
export function renderSummary(summaries: readonly HostSummary[]): string {
    const header = ["host", "generation", "system", "copied", "build", "copy", "activate", "result"];
    const rows = summaries.map((s) => [
        s.host,
        `${s.generationBefore ?? "-"} → ${s.generationAfter ?? "-"}`,
        s.storePathBefore === s.storePathAfter ? shortPath(s.storePathAfter) : `${shortPath(s.storePathBefore)} → ${shortPath(s.storePathAfter)}`,
        s.result === "deployed" ? `${s.pathsCopied} paths, ${bytes(s.bytesCopied)}` : "-",
        seconds(s.timings.build),
        seconds(s.timings.copy),
        seconds(s.timings.activate),
        s.result === "failed" ? `FAILED: ${(s.error ?? "").split("\n")[0]}` : s.result,
    ]);
    const widths = header.map((_, i) => Math.max(header[i]!.length, ...rows.map((row) => row[i]!.length)));
    const line = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ");
    return [line(header), ...rows.map(line)].join("\n");
}
