// Progress lines from the provider to the engine (shown by `pulumi up` beside the host's row).
// The TypeScript provider SDK gives CRUD methods no logger, so we speak the engine's Log RPC
// ourselves, with the engine address the engine passed us on the command line.
/* eslint-disable @typescript-eslint/no-require-imports */
import type * as grpcModule from "@grpc/grpc-js";
import { grpc } from "./pulumiDeps";
import { maskSecrets } from "./secretMarkers";

// Generated protobuf stubs shipped inside @pulumi/pulumi (CommonJS, no type declarations we rely on).
const enginePb = require("@pulumi/pulumi/proto/engine_pb") as {
    LogRequest: new () => {
        setSeverity(value: number): void;
        setMessage(value: string): void;
        setUrn(value: string): void;
        setEphemeral(value: boolean): void;
    };
    LogSeverity: { DEBUG: number; INFO: number; WARNING: number; ERROR: number };
};
const engineGrpc = require("@pulumi/pulumi/proto/engine_grpc_pb") as {
    EngineClient: new (address: string, credentials: grpcModule.ChannelCredentials) => {
        log(request: unknown, callback: (error: Error | null) => void): void;
    };
};

export type Severity = "debug" | "info" | "warning" | "error";

export interface EngineLogger {
    log(severity: Severity, urn: string, message: string, ephemeral?: boolean): Promise<void>;
}

/** A logger that masks the given secret texts in every message. */
export function maskingLogger(logger: EngineLogger, secrets: readonly string[]): EngineLogger {
    if (secrets.length === 0) return logger;
    return { log: (severity, urn, message, ephemeral) => logger.log(severity, urn, maskSecrets(message, secrets), ephemeral) };
}

/** The engine address is the first non-flag argument the engine starts a provider with. */
export function engineAddressFrom(args: string[]): string | undefined {
    return args.find((arg) => !arg.startsWith("-"));
}

export function connectEngineLogger(address: string | undefined): EngineLogger {
    if (!address) {
        return { log: async (_severity, _urn, message) => void process.stderr.write(`${message}\n`) };
    }
    const client = new engineGrpc.EngineClient(address, grpc.credentials.createInsecure());
    // Messages are sent one after another, so progress lines arrive in the order they happened.
    let queue: Promise<void> = Promise.resolve();
    const severities = { debug: enginePb.LogSeverity.DEBUG, info: enginePb.LogSeverity.INFO, warning: enginePb.LogSeverity.WARNING, error: enginePb.LogSeverity.ERROR };
    return {
        log: (severity, urn, message, ephemeral = false) =>
            (queue = queue.then(() => new Promise<void>((resolve) => {
                const request = new enginePb.LogRequest();
                request.setSeverity(severities[severity]);
                request.setMessage(message);
                request.setUrn(urn);
                request.setEphemeral(ephemeral);
                // Logging must never fail a deploy.
                client.log(request, () => resolve());
            }))),
    };
}
