import { defineConfig } from "vitest/config";

// End-to-end tests start real processes (sandbox hosts, nix, ssh): generous timeouts. Two test
// files run at once: most of an end-to-end test is waiting (on activations, timeouts, SSH), and
// each file has its own fleet, ports, state and project directory, so two share the machine's two
// cores without touching each other; the whole suite stays well under 15 minutes.
export default defineConfig({
    test: {
        testTimeout: 120_000,
        hookTimeout: 120_000,
        fileParallelism: true,
        maxWorkers: 2,
    },
});
