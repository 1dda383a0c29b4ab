// `pulumi import` asks the provider to Read a resource by id alone: the ReadRequest carries no
// properties. The TypeScript provider SDK (@pulumi/pulumi/provider, 3.248) calls
// `req.getProperties().toJavaScript()` without checking, which throws "Cannot read properties of
// undefined (reading 'toJavaScript')" before our read() is ever called. This makes an absent
// properties (and inputs) Struct read as an empty one, so read() sees `{}` and can adopt the host.
/* eslint-disable @typescript-eslint/no-require-imports */
import type * as structModule from "google-protobuf/google/protobuf/struct_pb";
import { structproto } from "./pulumiDeps";

interface ReadRequestPrototype {
    getProperties(): structModule.Struct | undefined;
    getInputs(): structModule.Struct | undefined;
    __nixosFleetImportShim?: true;
}

const providerPb = require("@pulumi/pulumi/proto/provider_pb") as { ReadRequest: { prototype: ReadRequestPrototype } };

/** Installs the shim once (idempotent). */
export function installImportShim(prototype: ReadRequestPrototype = providerPb.ReadRequest.prototype): void {
    if (prototype.__nixosFleetImportShim) return;
    const getProperties = prototype.getProperties;
    const getInputs = prototype.getInputs;
    prototype.getProperties = function (this: ReadRequestPrototype) {
        return getProperties.call(this) ?? new structproto.Struct();
    };
    prototype.getInputs = function (this: ReadRequestPrototype) {
        return getInputs.call(this) ?? new structproto.Struct();
    };
    prototype.__nixosFleetImportShim = true;
}
