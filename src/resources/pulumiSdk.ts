// The parts of the Pulumi SDK the program and the resources use, each from its own module.
// `import "@pulumi/pulumi"` loads the whole SDK at every start: the Automation API, closure
// serialization and npm's arborist with it (~370 more modules, about 0.4 s), none of which a
// program that only registers resources needs; the `pulumi` run harness has already loaded the
// modules below. They are the same modules the package's index re-exports, so an Output or a
// resource made by a program that imports "@pulumi/pulumi" is one of these.
export { ComponentResource, CustomResource, type ComponentResourceOptions, type CustomResourceOptions } from "@pulumi/pulumi/resource";
export { Output, all, interpolate, output, secret, type Input } from "@pulumi/pulumi/output";
export { Config } from "@pulumi/pulumi/config";
export { getProject, getStack } from "@pulumi/pulumi/metadata";
export * as log from "@pulumi/pulumi/log";
export * as runtime from "./pulumiRuntime";
