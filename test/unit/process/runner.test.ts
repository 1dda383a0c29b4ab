// The real runner's abort: a process nobody waits for any more (a handshake to a host that does
// not answer, its connection closed) is killed at once, not left to its timeout.
import { describe, expect, it } from "vitest";
import { runProcess } from "../../../src/process/runner";

describe("runProcess", { timeout: 5000 }, () => {
    it("kills the process when its signal is aborted, and when it was aborted before the start", async () => {
        const stop = new AbortController();
        const running = runProcess(["sleep", "30"], { signal: stop.signal });
        setTimeout(() => stop.abort(), 50);
        const result = await running;
        expect(result).toMatchObject({ code: null, signal: "SIGKILL", timedOut: false });
        expect(result.durationMs).toBeLessThan(3000);
        const early = await runProcess(["sleep", "30"], { signal: AbortSignal.abort() });
        expect(early).toMatchObject({ code: null, signal: "SIGKILL" });
    });

    it("an abort after the process ended changes nothing", async () => {
        const stop = new AbortController();
        const result = await runProcess(["true"], { signal: stop.signal });
        stop.abort();
        expect(result).toMatchObject({ code: 0, signal: null });
    });

    it("stdout decoded as latin1 on request: one character per byte, also for bytes that are no UTF-8 (a caller counting bytes)", async () => {
        const chunks: string[] = [];
        const script = "printf 'caf\\351 \\342\\234\\223\\n'";
        const bytes = await runProcess(["sh", "-c", script], { stdoutEncoding: "latin1", onStdout: (chunk) => chunks.push(chunk) });
        expect(Buffer.from(bytes.stdout, "latin1")).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xe2, 0x9c, 0x93, 0x0a]));
        expect(chunks.join("")).toBe(bytes.stdout);
        // Without it, UTF-8 as before: the stray byte becomes a replacement character.
        expect((await runProcess(["sh", "-c", script])).stdout).toBe("caf\ufffd \u2713\n");
    });
});
