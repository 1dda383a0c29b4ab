// The benchmark chart (docs/benchmarks.svg) from a results file: one bar per figure, as a share of
// its target (the dashed line is the target; a bar past it misses). Pure rendering + a small CLI:
//   npm run bench:chart -- docs/benchmarks.svg bench/results/<time>.json [more.json…]
// (several files: their figures in one chart, e.g. runs of different sizes.)
import { readFileSync, writeFileSync } from "node:fs";
import { formatValue, type Figure } from "./stats";

export interface BenchResults {
    date: string;
    machine: string;
    options: Record<string, unknown>;
    figures: Figure[];
}

const escape = (text: string): string =>
    text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const WIDTH = 900;
const LABEL = 400;
const BAR = 300;
const ROW = 28;
const TOP = 48;

export function renderChart(results: BenchResults): string {
    const figures = results.figures;
    if (figures.length === 0) throw new Error("no figures to chart");
    const shares = figures.map((f) => f.value / f.target);
    const scale = Math.max(1.25, ...shares); // the target line sits at 1
    const x = (share: number) => LABEL + (Math.min(share, scale) / scale) * BAR;
    const height = TOP + figures.length * ROW + 40;
    const rows = figures.map((f, i) => {
        const y = TOP + i * ROW;
        const fill = f.met ? "#3a7d44" : "#c0392b";
        const text = `${formatValue(f.value, f.unit)} (target ≤ ${formatValue(f.target, f.unit)})`;
        return [
            `<text x="${LABEL - 8}" y="${y + 15}" text-anchor="end">${escape(`${f.id} ${f.label}, ${f.size}`)}</text>`,
            `<rect x="${LABEL}" y="${y + 4}" width="${(x(shares[i]!) - LABEL).toFixed(1)}" height="${ROW - 10}" fill="${fill}"/>`,
            `<text x="${LABEL + BAR + 8}" y="${y + 15}">${escape(text)}</text>`,
        ].join("\n");
    });
    const target = x(1).toFixed(1);
    return [
        `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
        `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
        `<text x="10" y="20" font-size="14" font-weight="bold">${escape(`nixos-fleet benchmarks, ${results.date} (${results.machine})`)}</text>`,
        `<text x="10" y="36" fill="#555">bar: measured / target (dashed line = target; green meets it, red does not)</text>`,
        ...rows,
        `<line x1="${target}" y1="${TOP - 4}" x2="${target}" y2="${TOP + figures.length * ROW}" stroke="#333" stroke-dasharray="4 3"/>`,
        `<text x="${target}" y="${TOP + figures.length * ROW + 16}" text-anchor="middle" fill="#333">target</text>`,
        `</svg>`,
        "",
    ].join("\n");
}

/** Several runs' results as one (figures by scenario; dates joined). */
export function combineResults(runs: readonly BenchResults[]): BenchResults {
    if (runs.length === 0) throw new Error("no results to combine");
    const unique = (values: string[]) => [...new Set(values)].join(", ");
    return {
        date: unique(runs.map((run) => run.date)),
        machine: unique(runs.map((run) => run.machine)),
        options: {},
        // By scenario (stable: a scenario's figures keep the order of the runs given).
        figures: runs.flatMap((run) => run.figures).sort((a, b) => a.id.localeCompare(b.id)),
    };
}

if (require.main === module) {
    const [output, ...inputs] = process.argv.slice(2);
    if (!output?.endsWith(".svg") || inputs.length === 0) {
        console.error("usage: npm run bench:chart -- <chart.svg> <results.json> [more.json…]");
        process.exit(2);
    }
    const runs = inputs.map((input) => JSON.parse(readFileSync(input, "utf8")) as BenchResults);
    writeFileSync(output, renderChart(combineResults(runs)));
    console.log(`wrote ${output}`);
}
