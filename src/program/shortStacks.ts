// The Pulumi Node.js SDK records `new Error().stack` on every promise it makes while registering
// a resource (runtime/debuggable.ts, one per input and output property), for its leaked-promise
// report. Each of those stacks goes through source-map-support, frame by frame: for a fleet of
// 50 hosts that was 0.8 s of a 3 s no-op preview. The resources' own source positions do not
// depend on it (the SDK lifts the limit for those), so the fleet is registered with one frame
// per recorded stack; an error thrown meanwhile still names where it was thrown.

/**
 * Runs `register` with Error.stackTraceLimit at 1 and Node.js's own stack formatting (not
 * source-map-support's, which maps each frame through the source maps: still ~2 ms a host with one
 * frame a stack), then restores both (also when it throws).
 */
export function withShortStackTraces<T>(register: () => T): T {
    const limit = Error.stackTraceLimit;
    const formatting = Error as { prepareStackTrace?: unknown };
    const prepare = formatting.prepareStackTrace;
    Error.stackTraceLimit = 1;
    formatting.prepareStackTrace = undefined;
    try {
        return register();
    } finally {
        Error.stackTraceLimit = limit;
        formatting.prepareStackTrace = prepare;
    }
}
