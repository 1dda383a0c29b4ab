// Figures of a benchmark run (pure; unit-tested): medians, ratios against the same run's
// baseline, and whether each meets the target.
export function median(values: readonly number[]): number {
    if (values.length === 0) throw new Error("median of no values");
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function ratio(measured: number, baseline: number): number {
    if (!(baseline > 0) || !(measured >= 0)) throw new Error(`cannot compare ${measured} with a baseline of ${baseline}`);
    return measured / baseline;
}

/** What a figure is: a ratio to a baseline (×), a count per host, or a size in MiB. */
export type Unit = "x" | "per host" | "MiB";

export interface Figure {
    id: string;
    label: string;
    /** The sizes the figure is from, e.g. "50 hosts". */
    size: string;
    value: number;
    unit: Unit;
    /** Upper limit the issue sets (value ≤ target meets it). */
    target: number;
    met: boolean;
    /** Medians in ms behind a ratio: ours and the baseline's parts. */
    timings?: Record<string, number>;
    note?: string;
}

export function figure(fields: Omit<Figure, "met">): Figure {
    if (!Number.isFinite(fields.value)) throw new Error(`${fields.id}: no value measured`);
    return { ...fields, met: fields.value <= fields.target };
}

export function formatValue(value: number, unit: Unit): string {
    if (unit === "x") return `${value.toFixed(2)}×`;
    if (unit === "MiB") return `${Math.round(value)} MiB`;
    return `${Number.isInteger(value) ? value : value.toFixed(2)} per host`;
}

export function summaryLine(f: Figure): string {
    return `${f.id.padEnd(9)}${f.label.padEnd(52)}${formatValue(f.value, f.unit).padStart(14)}  target ≤ ${formatValue(f.target, f.unit).padEnd(12)} ${f.met ? "met" : "NOT met"}  (${f.size})`;
}
