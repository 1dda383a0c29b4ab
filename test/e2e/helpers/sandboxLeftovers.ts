// What a stopped sandbox fleet must not leave on the machine: processes, cgroups, listeners, mounts.
import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import { hostCgroups } from "../../../sandbox/cgroups";
import { runChecked, runProcess } from "../../../src/process/runner";

export async function expectNothingLeft(dir: string, ports: readonly number[]): Promise<void> {
    const ps = (await runChecked(runProcess, ["ps", "-e", "-ww", "-o", "pid=,stat=,args="])).stdout.split("\n");
    expect(ps.filter((line) => line.includes(dir) && !/^\s*\d+\s+Z/.test(line))).toEqual([]);
    const hostsDir = path.join(dir, "hosts");
    const names = fs.existsSync(hostsDir) ? fs.readdirSync(hostsDir) : [];
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
        for (const cg of hostCgroups(path.join(hostsDir, name), name)) expect(fs.existsSync(cg), `${cg} is left`).toBe(false);
    }
    const listeners = (await runChecked(runProcess, ["ss", "-ltnH"])).stdout;
    for (const port of ports) expect(listeners).not.toContain(`127.0.0.1:${port} `);
    expect(fs.readFileSync("/proc/mounts", "utf8")).not.toContain(dir);
}
