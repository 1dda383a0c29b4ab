// Modules the provider uses that belong to @pulumi/pulumi (its gRPC library and protobuf runtime),
// loaded as @pulumi/pulumi itself loads them. They are not nixos-fleet's dependencies: resolved from
// our own folder they could be another copy than the one @pulumi/pulumi's generated stubs use (a
// project on another @pulumi/pulumi version, pnpm's strict layout), and grpc-js refuses credentials
// made by another copy of itself.
/* eslint-disable @typescript-eslint/no-require-imports */
import { createRequire } from "node:module";
import type * as grpcModule from "@grpc/grpc-js";
import type * as structModule from "google-protobuf/google/protobuf/struct_pb";

/** `require` as seen from @pulumi/pulumi's own package folder. */
export const requireFromPulumi = createRequire(require.resolve("@pulumi/pulumi/package.json"));

export const grpc = requireFromPulumi("@grpc/grpc-js") as typeof grpcModule;
export const structproto = requireFromPulumi("google-protobuf/google/protobuf/struct_pb") as typeof structModule;
