import { describe, expect, it } from "vitest";
import { MAX_PATHS, parseKnobAssignments } from "../../../sandbox/knobs";
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

    it("paths=N: extra store paths, a whole number up to MAX_PATHS", () => {
        expect(parseKnobAssignments(["paths=300"])).toEqual({ paths: 300 });
        expect(parseKnobAssignments(["paths=0"])).toEqual({ paths: 0 });
        expect(parseKnobAssignments([`paths=${MAX_PATHS}`])).toEqual({ paths: MAX_PATHS });
        expect(() => parseKnobAssignments(["paths=-1"])).toThrow(/knob paths takes a whole number/);
        expect(() => parseKnobAssignments(["paths=1e3"])).toThrow(/knob paths takes a whole number/);
        expect(() => parseKnobAssignments([`paths=${MAX_PATHS + 1}`])).toThrow();
    });

    it("kernel=N: the kernel, initrd and kernel-modules version, a whole number from 1", () => {
        expect(parseKnobAssignments(["kernel=2"])).toEqual({ kernel: 2 });
        expect(() => parseKnobAssignments(["kernel=0"])).toThrow();
        expect(() => parseKnobAssignments(["kernel=two"])).toThrow(/knob kernel takes a whole number/);
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
