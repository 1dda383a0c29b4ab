// `pulumi.runtime` as far as the program uses it (see pulumiSdk.ts for why not the SDK's index).
export { isDryRun } from "@pulumi/pulumi/runtime/settings";
