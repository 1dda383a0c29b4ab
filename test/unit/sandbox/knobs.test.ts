import { describe, expect, it } from "vitest";
import { parseKnobAssignments } from "../../../sandbox/knobs";
import { parseUnitStatus, progressOf, failedUnitsOf } from "../../../src/deploy/activationUnit";

describe("sandbox knobs", () => {
    it("failedUnits takes a comma-separated list of unit names, with or without .service, and an empty one clears it", () => {
        expect(parseKnobAssignments(["failedUnits=web,worker.service,web"])).toEqual({ failedUnits: ["web", "worker"] });
        expect(parseKnobAssignments(["failedUnits="])).toEqual({ failedUnits: [] });
    });

    it("refuses unit names that are not plain (no paths, spaces or shell)", () => {
        for (const bad of ["failedUnits=../x", "failedUnits=a b", "failedUnits=$(touch /tmp/x)", "failedUnits=Web"]) {
            expect(() => parseKnobAssignments([bad]), bad).toThrow(/knob failedUnits takes unit names/);
        }
    });

    it("packages=name@version[,…]: extra packages; an empty value removes them all", () => {
        expect(parseKnobAssignments(["packages=hello@2.12,curl-lite@8.0.1"])).toEqual({ packages: ["hello@2.12", "curl-lite@8.0.1"] });
        expect(parseKnobAssignments(["packages="])).toEqual({ packages: [] });
        // A name with a dash before a digit would not read back as name and version.
        for (const bad of ["packages=hello", "packages=hello@", "packages=foo-2@1.0", "packages=hello@x1", "packages=$(x)@1", "packages=Hello@1"]) {
            expect(() => parseKnobAssignments([bad]), bad).toThrow(/knob packages takes name@version/);
        }
        expect(() => parseKnobAssignments(["packages=hello@1,hello@2"])).toThrow(/names hello more than once/);
    });

    it("keeps the other knobs' rules", () => {
        expect(parseKnobAssignments(["version=3", "slow=12", "fail=true"])).toEqual({ version: 3, slow: 12, fail: true });
        expect(() => parseKnobAssignments(["slow=-1"])).toThrow(/whole number/);
        expect(() => parseKnobAssignments(["nope=1"])).toThrow(/bad knob/);
    });
});

describe("reading the activation unit", () => {
    it("a running unit, an exit, a kill and a forgotten unit", () => {
        const show = (lines: Record<string, string>) => Object.entries(lines).map(([k, v]) => `${k}=${v}`).join("\n");
        const loaded = { LoadState: "loaded", ActiveState: "active", SubState: "running", ExecMainCode: "0", ExecMainStatus: "0", MainPID: "412" };
        expect(progressOf(parseUnitStatus(show(loaded)))).toEqual({ kind: "running" });
        expect(progressOf(parseUnitStatus(show({ ...loaded, SubState: "exited", MainPID: "0", ExecMainCode: "1" })))).toEqual({ kind: "exited", status: 0 });
        expect(progressOf(parseUnitStatus(show({ ...loaded, ActiveState: "failed", SubState: "failed", MainPID: "0", ExecMainCode: "1", ExecMainStatus: "4" })))).toEqual({ kind: "exited", status: 4 });
        expect(progressOf(parseUnitStatus(show({ ...loaded, ActiveState: "failed", SubState: "failed", MainPID: "0", ExecMainCode: "2", ExecMainStatus: "9" })))).toEqual({ kind: "killed", signal: 9 });
        expect(progressOf(parseUnitStatus(show({ LoadState: "not-found", ActiveState: "inactive", SubState: "dead", MainPID: "0" })))).toEqual({ kind: "gone" });
        // No answer from systemctl at all: not "gone", look again.
        expect(progressOf(parseUnitStatus(""))).toEqual({ kind: "running" });
    });

    it("names the failed units switch-to-configuration reports", () => {
        expect(failedUnitsOf("reloading\nwarning: the following units failed: web.service worker.service\n× web.service\n")).toEqual(["web.service", "worker.service"]);
        expect(failedUnitsOf("switch: done")).toEqual([]);
    });
});
