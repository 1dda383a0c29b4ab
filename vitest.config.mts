import { defineConfig } from "vitest/config";

// End-to-end tests start real processes (sandbox hosts, nix, ssh): generous timeouts, and one
// test file at a time so fleets and nix builds do not compete for the machine's two cores.
export default defineConfig({
    test: {
        testTimeout: 120_000,
        hookTimeout: 120_000,
        fileParallelism: false,
    },
});
