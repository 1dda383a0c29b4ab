// 50 sandbox hosts (systemd-nspawn containers booting real systemd) run on this machine at once,
// and stop leaves nothing behind, also after a host's supervisor crashed.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SandboxFleet } from "../../sandbox/fleet";
import { pidsIn, hostCgroups } from "../../sandbox/cgroups";
import { expectNothingLeft } from "./helpers/sandboxLeftovers";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sandbox-scale-"));
const fleet = new SandboxFleet({ dir, portBase: 27400 });
const HOSTS = Array.from({ length: 50 }, (_, i) => `h${String(i + 1).padStart(2, "0")}`);

afterAll(async () => {
    await fleet.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
});

describe("sandbox fleet at size", () => {
    it("starts 50 hosts, each booting systemd and answering on SSH; stop leaves nothing, also after a crash", async () => {
        await fleet.start(HOSTS);
        const status = await fleet.status();
        expect(status.filter((h) => h.running).map((h) => h.name)).toEqual(HOSTS);
        for (const host of [HOSTS[0]!, HOSTS[24]!, HOSTS[49]!]) {
            const result = await fleet.exec(host, ["systemctl", "is-system-running", "--wait"]);
            expect(result.stdout.trim(), result.stderr).toBe("running");
        }
        // A crash: h07's boot loop and systemd-nspawn die; its container keeps running unsupervised.
        const crashed = path.join(dir, "hosts", "h07");
        const cgroups = hostCgroups(crashed, "h07");
        for (const pid of [...pidsIn(cgroups, "launcher"), ...pidsIn(cgroups, "container/supervisor")]) process.kill(pid, "SIGKILL");
        expect(fleet.initPid("h07")).toBeDefined();

        const ports = HOSTS.flatMap((h) => [fleet.host(h).port, fleet.host(h).webPort]);
        await fleet.stop();
        await expectNothingLeft(dir, ports);
    }, 300_000);
});
