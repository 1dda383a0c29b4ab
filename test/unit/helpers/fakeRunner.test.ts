import { describe, expect, it } from "vitest";
import { remoteCommand } from "../../../src/ssh/quote";
import { FakeRunner, local, masterCheck, remote, shellWords, sshOption } from "./fakeRunner";

describe("FakeRunner (test helper)", () => {
    it("shellWords undoes remoteCommand's quoting", () => {
        const args = ["sudo", "-n", "--", "", "a b", "it's", "$x", "; rm -rf /"];
        expect(shellWords(remoteCommand(args))).toEqual(args);
    });

    it("records calls and decodes the remote command of an ssh call riding a master", async () => {
        const runner = new FakeRunner().on(remote("echo"), { stdout: "hi\n" });
        const result = await runner.run(["ssh", "-o", "ControlMaster=no", "root@h", remoteCommand(["sudo", "-n", "--", "echo", "a b"])]);
        expect(result).toMatchObject({ code: 0, stdout: "hi\n", stderr: "", timedOut: false });
        expect(runner.calls[0]).toMatchObject({ viaSudo: true, remoteCommand: ["echo", "a b"], isMasterStart: false });
    });

    it("once-rules answer one call, before standing rules; later standing rules win", async () => {
        const runner = new FakeRunner()
            .on(local("x"), { stdout: "old" })
            .on(local("x"), { stdout: "standing" })
            .once(local("x"), { stdout: "first" });
        const outputs = [];
        for (let i = 0; i < 3; i++) outputs.push((await runner.run(["tool", "x"])).stdout);
        expect(outputs).toEqual(["first", "standing", "standing"]);
    });

    it("recognises ssh -O check and answers it as a running master unless told otherwise", async () => {
        const runner = new FakeRunner();
        const check = ["ssh", "-o", "ControlPath=/tmp/x.sock", "-O", "check", "root@h"];
        expect((await runner.run(check)).code).toBe(0);
        expect(runner.calls[0]).toMatchObject({ isMasterCheck: true, isMasterExit: false, isMasterStart: false });
        expect(runner.calls[0]!.remoteCommand).toBeUndefined();
        runner.on(masterCheck, { code: 255 });
        expect((await runner.run(check)).code).toBe(255);
    });

    it("rejects and records a call no rule answers", async () => {
        const runner = new FakeRunner();
        await expect(runner.run(["rm", "-rf", "/"])).rejects.toThrow(/unexpected call: rm -rf \//);
        expect(runner.unexpected).toHaveLength(1);
    });

    it("sshOption finds the first -o value of a key", () => {
        expect(sshOption(["-o", "A=1", "-o", "B=2", "-o", "A=3"], "A")).toBe("1");
        expect(sshOption(["-o", "AB=1"], "A")).toBeUndefined();
    });
});
