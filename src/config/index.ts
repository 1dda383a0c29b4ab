// Public API of the config layer: host files, stack settings, selection.
export { FleetConfigError, formatProblem, isFleetConfigError } from "./configError";
export {
    ACTIONS,
    BUILD_LOCATIONS,
    HOST_DEFAULTS,
    HOST_FIELDS,
    hostFileSchema,
    hostPatchSchema,
    needsSudo,
    resolveHost,
    type Action,
    type BuildLocation,
    type HostConfig,
    type HostFields,
    type HostFileInput,
    type HostPatch,
    type HostSource,
} from "./hostSchema";
export {
    HEALTH_CHECK_DEFAULTS,
    healthChecksSchema,
    type CommandCheck,
    type HealthChecks,
    type HealthChecksInput,
    type HttpCheck,
    type TcpCheck,
} from "./healthChecks";
export { hookSchema, type Hook, type HookInput } from "./hooks";
export {
    loadHostFiles,
    loadHostFilesSync,
    parseHostFile,
    parseHostFiles,
    type HostFileText,
    type LoadHostsOptions,
    type ParsedHostFile,
} from "./loadHosts";
export { HOST_NAME_RULE, TAG_RULE, isHostName, isTag } from "./names";
export { resolveFlakeRef, resolveLocalPath } from "./paths";
export { applyOverrides, selectHosts } from "./selectHosts";
export {
    CONFIG_NAMESPACE,
    STACK_CONFIG_KEYS,
    configSourceOf,
    parseStackConfig,
    readStackConfig,
    stackConfigSchema,
    type ConfigSource,
    type Pin,
    type StackConfig,
    type StackConfigInput,
    type StackConfigOptions,
} from "./stackConfig";
export { loadStackHosts, loadStackHostsSync, resolveStackHosts, unknownHostProblems } from "./stackHosts";
