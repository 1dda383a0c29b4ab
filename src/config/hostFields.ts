// The one list of host fields. Each field is declared here once: its rule in host files (and stack
// `defaults`/`overrides`), its default, its rule as an input of the nixos:index:Host resource (and
// so in the provider's Pulumi schema), how a host's value becomes that input, and whether it is a
// connection setting (the SSH target, and the inputs of a nixos:index:Hook on the host). The host
// file schema (hostSchema.ts), HOST_DEFAULTS, HostConfig, the resource's input schema
// (provider/hostInputs.ts), hostInputsOf/connectionOf (program/hostInputs.ts), sshTargetOf and the
// Hook's connection inputs are all derived from HOST_FIELDS: adding a field is one entry here.
import { z } from "zod";
import { NO_HEALTH_CHECKS, hasChecks, healthChecksSchema, type HealthChecks } from "./healthChecks";
import { hooksSchema, type Hook } from "./hooks";
import { hostName, tag } from "./names";
import { deleteOlderThan, flakeRef, nixAttributePath } from "./nixRules";
import { boolean, distinctListOf, expecting, integerIn, listOf, seconds, sshOptsPath } from "./rules";
import { address, hostKey, proxyJump, sshOption, userName } from "./sshRules";
import type { SshTarget } from "../ssh/target";

export const BUILD_LOCATIONS = ["local", "target"] as const;
export const ACTIONS = ["switch", "boot", "test", "dry-activate"] as const;
export const REBOOT_POLICIES = ["never", "auto", "always"] as const;
export type BuildLocation = (typeof BUILD_LOCATIONS)[number];
export type Action = (typeof ACTIONS)[number];
export type RebootPolicy = (typeof REBOOT_POLICIES)[number];

/** The validated fields of a host file, as far as a field's input mapping needs them. */
type Declared = Readonly<Record<string, unknown>>;

/** One host field. */
export interface HostFieldSpec {
    /** Its rule in host files, stack `defaults` and `overrides` (optional there unless always required). */
    readonly file: z.ZodType;
    /** The value when no layer sets it (absent: no default; the field stays unset). */
    readonly default?: unknown;
    /** Always set after resolution although it has no constant default (e.g. `attribute`, from the host's name). */
    readonly derivedDefault?: true;
    /** Its rule as a nixos:index:Host input; absent: the field is not passed to the resource. */
    readonly input?: z.ZodType;
    /**
     * The provider's check fills `default` in when the input is left out (a program in another
     * language, or a Host without it), so the schema does not list it as required. Only for inputs
     * every program passes anyway (else a stack written before would see a change).
     */
    readonly inputDefault?: true;
    /**
     * How the resolved value becomes the input (default: as it is); undefined leaves the input out.
     * `hosts` finds the stack's other hosts (for a field that names one: buildHost).
     */
    readonly toInput?: (value: never, declared: Declared, hosts: HostLookup) => unknown;
    /** A connection setting: part of the SSH target and of each Hook's inputs. */
    readonly connection?: true;
    /** A local file path: made absolute against the project root when the host is resolved. */
    readonly localPath?: true;
}

const portRule = z.number().int().min(1).max(65535);

/** Every host field, in the order of the resource's inputs (connection settings first). */
export const HOST_FIELDS = {
    // Connection
    /** Host name, IP address or ssh_config alias. */
    address: {
        file: address(),
        // The host-file rule too: the library's Host (and another program) reach the provider without a host file.
        input: z.string().min(1).refine((value) => !value.startsWith("-"), "must not start with '-'").pipe(address()),
        connection: true,
    },
    port: {
        file: integerIn(1, 65535).optional(),
        default: 22,
        input: portRule.optional(),
        // Only an explicit port is passed to ssh, so an ssh_config alias keeps its own Port.
        toInput: (_value: number, declared: Declared) => declared.port,
        connection: true,
    },
    /** Deploy user; anyone but root activates with `sudo -n`. */
    user: {
        file: userName().optional(),
        default: "root",
        input: userName(),
        inputDefault: true,
        connection: true,
    },
    identityFile: {
        file: sshOptsPath("a path to an ssh private key").optional(),
        // The host-file rule: the path reaches nix through NIX_SSHOPTS (no whitespace, no leading '-').
        input: sshOptsPath("a path to an ssh private key").optional(),
        connection: true,
        localPath: true,
    },
    /** ssh -J syntax: [user@]host[:port][,...] */
    proxyJump: { file: proxyJump().optional(), input: proxyJump().optional(), connection: true },
    /** Pinned public host key, "<type> <base64>". */
    hostKey: { file: hostKey().optional(), input: hostKey().optional(), connection: true },
    knownHostsFile: {
        file: sshOptsPath("a path to a known_hosts file").optional(),
        input: sshOptsPath("a path to a known_hosts file").optional(),
        connection: true,
        localPath: true,
    },
    /** ssh_config used instead of ~/.ssh/config (ssh -F). */
    sshConfigFile: {
        file: sshOptsPath("a path to an ssh_config file").optional(),
        input: sshOptsPath("a path to an ssh_config file").optional(),
        connection: true,
        localPath: true,
    },
    /** Extra `-o Key=Value` options, without the -o. */
    sshOptions: {
        file: listOf(sshOption(), 'a list of ssh options like "ServerAliveInterval=15"').optional(),
        default: [] as string[],
        // The same allow-list as host files: inputs may also come from an old state or another program.
        input: z.array(sshOption()).optional(),
        toInput: (value: readonly string[]) => (value.length ? [...value] : undefined),
        connection: true,
    },
    /** Dangerous: accept any host key. */
    insecureSkipHostKeyCheck: {
        file: boolean().optional(),
        default: false,
        input: z.boolean().optional(),
        toInput: (value: boolean) => value || undefined,
        connection: true,
    },
    /** Seconds ssh waits for a connection. */
    connectTimeout: {
        file: seconds({ max: 3600 }).optional(),
        default: 10,
        input: seconds({ max: 3600 }).optional(),
        connection: true,
    },
    // Confirm/rollback, health checks, generation cleanup
    /** Seconds to wait for confirmation after activation before rolling back; 0 disables. */
    confirmTimeout: {
        file: seconds({ allowZero: true, max: 3600 }).optional(),
        default: 30,
        // Filled in: left out, the deploy would arm no watchdog at all (0), not the documented 30 s.
        input: seconds({ allowZero: true, max: 3600 }),
        inputDefault: true,
    },
    /** Seconds to keep trying to reach a host whose connection dropped during activation. */
    reconnectTimeout: {
        file: seconds({ max: 3600 }).optional(),
        default: 60,
        // Fractions allowed (a bound, not a setting passed on): tests use a millisecond to avoid waiting.
        input: z.number().positive().max(3600).optional(),
    },
    keepGenerations: {
        file: integerIn(1, 10_000, "a number of generations of at least 1").optional(),
        input: integerIn(1, 10_000, "a number of generations of at least 1").optional(),
    },
    deleteOlderThan: {
        file: deleteOlderThan().optional(),
        input: deleteOlderThan().optional(),
    },
    gc: {
        file: boolean().optional(),
        default: false,
        input: z.boolean().optional(),
        toInput: (value: boolean) => value || undefined,
    },
    healthChecks: {
        file: healthChecksSchema.optional(),
        default: NO_HEALTH_CHECKS as HealthChecks,
        input: healthChecksSchema.optional(),
        // keepGoing alone matters too: it keeps a host whose activation left units failed.
        toInput: (value: HealthChecks) => (hasChecks(value) || value.keepGoing ? value : undefined),
    },
    // What to build and how to activate it
    /** Flake reference; local paths are absolute. */
    // No default as an input: flake and attribute name the system whose storePath the program
    // passes (evaluateSystem returns all of them); "." would mean the provider's directory.
    flake: { file: flakeRef().optional(), default: ".", input: flakeRef() },
    /** Attribute of the flake to build, e.g. nixosConfigurations.alpha (default: nixosConfigurations.<name>). */
    attribute: { file: nixAttributePath().optional(), derivedDefault: true, input: nixAttributePath() },
    buildOn: {
        file: z.enum(BUILD_LOCATIONS, expecting('"local" or "target"')).optional(),
        default: "local" as BuildLocation,
        input: z.enum(BUILD_LOCATIONS),
        inputDefault: true,
    },
    action: {
        file: z.enum(ACTIONS, expecting('"switch", "boot", "test" or "dry-activate"')).optional(),
        default: "switch" as Action,
        input: z.enum(ACTIONS),
        inputDefault: true,
    },
    /** Let the target fetch from its substituters instead of receiving everything over ssh. */
    substituteOnDestination: { file: boolean().optional(), default: false, input: z.boolean(), inputDefault: true },
    tags: {
        file: distinctListOf(tag(), "a list of tags").optional(),
        default: [] as string[],
        input: distinctListOf(tag(), "a list of tags"),
        inputDefault: true,
        toInput: (value: readonly string[]) => [...value],
    },
    /**
     * Another host of the stack on which this host's system is built (nix/buildHost.ts). The
     * resource gets that host's name and connection settings, so the provider reaches it (verified
     * like the host itself) without reading host files.
     */
    buildHost: {
        file: hostName().optional(),
        input: z.lazy((): z.ZodType<SshTarget> => buildHostInputSchema()).optional(),
        toInput: (name: string, _declared: Declared, hosts: HostLookup) => buildHostInput(name, hosts),
    },
    // Reboots (deploy/reboot.ts)
    /** never: report "reboot needed"; auto: reboot when the kernel, initrd or modules changed (or to activate a boot deploy); always: after every deploy that changed the host. */
    reboot: {
        file: z.enum(REBOOT_POLICIES, expecting('"never", "auto" or "always"')).optional(),
        default: "never" as RebootPolicy,
        input: z.enum(REBOOT_POLICIES).optional(),
        // Only a policy that reboots is passed: hosts that never reboot keep their inputs as they were.
        toInput: (value: RebootPolicy) => (value === "never" ? undefined : value),
    },
    /** Seconds a reboot may take, from issuing it until the new boot answers over ssh. */
    rebootTimeout: {
        file: seconds({ max: 3600 }).optional(),
        default: 600,
        // The host file's rule for every input: a fraction of a second or a wait of years is a mistake.
        input: seconds({ max: 3600 }).optional(),
        toInput: (value: number, declared: Declared) => declared.rebootTimeout,
    },
    // Not passed to the resource: the program registers each hook as a nixos:index:Hook.
    hooks: { file: hooksSchema.optional(), default: [] as Hook[] },
} as const satisfies Record<string, HostFieldSpec>;

/**
 * The stack's hosts by name, resolved (with what their files and layers set): what buildHost names.
 * Typed loosely (a resolved host is a ResolvedHostFields) so HOST_FIELDS's type does not refer to itself.
 */
export type HostLookup = (name: string) => ({ readonly declared: Declared } & Readonly<Record<string, unknown>>) | undefined;

const NO_HOSTS: HostLookup = () => undefined;

/** The buildHost input: the build host's name and its connection inputs, with the same rules as a host's own. */
function buildHostInputSchema(): z.ZodType<SshTarget> {
    const connection = Object.fromEntries(CONNECTION_FIELDS.map((name) => [name, hostFieldInputsShape[name]]));
    return z.strictObject({ name: hostName(), ...connection }) as unknown as z.ZodType<SshTarget>;
}

/** The build host's name and connection inputs; a name that is not a host of the stack is a bug here (the stack check refuses it first). */
function buildHostInput(name: string, hosts: HostLookup): SshTarget {
    const host = hosts(name);
    if (!host) throw new Error(`buildHost ${JSON.stringify(name)} is not a host of this stack`);
    // Only its connection fields: the build host's own buildHost (itself, or a host built on this
    // one: A→B→A) is not part of how to reach it, and following it would never end.
    const inputs = fieldInputsOf(host as unknown as ResolvedHostFields, host.declared, hosts, CONNECTION_FIELDS);
    return Object.fromEntries([["name", name], ...CONNECTION_FIELDS.flatMap((field) => (inputs[field] === undefined ? [] : [[field, inputs[field]]]))]) as unknown as SshTarget;
}

type Fields = typeof HOST_FIELDS;
export type HostFieldName = keyof Fields;

type KeysWhere<Condition> = { [K in HostFieldName]: Fields[K] extends Condition ? K : never }[HostFieldName];
type DefaultedField = KeysWhere<{ default: unknown }>;
type InputField = KeysWhere<{ input: z.ZodType }>;
type ConnectionField = KeysWhere<{ connection: true }>;
type LocalPathField = KeysWhere<{ localPath: true }>;
type AlwaysSet = DefaultedField | KeysWhere<{ derivedDefault: true }>;

/** Field rules shared by host files, stack `defaults` and stack `overrides`. */
export const hostFieldsShape = mapFields((spec) => spec.file) as { [K in HostFieldName]: Fields[K]["file"] };

/** Values for the fields a host file leaves out (`attribute` defaults to nixosConfigurations.<name>). */
export const HOST_DEFAULTS = Object.fromEntries(
    Object.entries(HOST_FIELDS as Record<string, HostFieldSpec>)
        .filter(([, spec]) => "default" in spec)
        .map(([name, spec]) => [name, spec.default]),
) as { readonly [K in DefaultedField]: Fields[K]["default"] };

type ReadonlyArrays<T> = T extends readonly (infer E)[] ? readonly E[] : T;
type FieldValue<K extends HostFieldName> = ReadonlyArrays<z.output<Fields[K]["file"]>>;

/** Every host field after defaults: a field with a default (or derived one) is always set. */
export type ResolvedHostFields = { readonly [K in AlwaysSet]: NonNullable<FieldValue<K>> } & {
    readonly [K in Exclude<HostFieldName, AlwaysSet>]?: FieldValue<K>;
} & { readonly address: string };

/** The Host resource's inputs that are host fields (`name`, the system and run data are added in provider/hostInputs.ts). */
export const hostFieldInputsShape = Object.fromEntries(
    Object.entries(HOST_FIELDS as Record<string, HostFieldSpec>).flatMap(([name, spec]) =>
        spec.input ? [[name, spec.inputDefault ? spec.input.default(() => structuredClone(spec.default)) : spec.input]] : [],
    ),
) as { [K in InputField]: Fields[K] extends { inputDefault: true } ? z.ZodDefault<Fields[K]["input"]> : Fields[K]["input"] };

/** The host fields the provider's check fills in with their default when an input leaves them out. */
export const INPUT_DEFAULT_FIELDS = (Object.keys(HOST_FIELDS) as HostFieldName[]).filter(
    (name) => (HOST_FIELDS[name] as HostFieldSpec).inputDefault,
) as KeysWhere<{ inputDefault: true }>[];

/** The connection fields (SSH target, Hook connection), in input order. */
export const CONNECTION_FIELDS = (Object.keys(HOST_FIELDS) as HostFieldName[]).filter(
    (name) => (HOST_FIELDS[name] as HostFieldSpec).connection,
) as ConnectionField[];

/** The fields holding local file paths (resolved against the project root). */
export const LOCAL_PATH_FIELDS = (Object.keys(HOST_FIELDS) as HostFieldName[]).filter(
    (name) => (HOST_FIELDS[name] as HostFieldSpec).localPath,
) as LocalPathField[];

/** The host fields passed to the resource, in input order. */
export const INPUT_FIELDS = Object.keys(hostFieldInputsShape) as InputField[];

export type ConnectionFieldName = ConnectionField;
export type InputFieldName = InputField;

/**
 * A resolved host's fields as resource inputs: each field's toInput (or the value), without the
 * fields that map to undefined. `declared` is what the host's files set, before defaults.
 */
export function fieldInputsOf(host: ResolvedHostFields, declared: Declared, hosts: HostLookup = NO_HOSTS, fields: readonly HostFieldName[] = INPUT_FIELDS): Record<string, unknown> {
    const inputs: Record<string, unknown> = {};
    for (const name of fields) {
        const spec = HOST_FIELDS[name] as HostFieldSpec;
        const value = (host as Record<string, unknown>)[name];
        if (value === undefined && !("default" in spec)) continue;
        const input = spec.toInput ? spec.toInput(value as never, declared, hosts) : value;
        if (input !== undefined) inputs[name] = input;
    }
    return inputs;
}

function mapFields<T>(map: (spec: HostFieldSpec) => T): Record<HostFieldName, T> {
    return Object.fromEntries(Object.entries(HOST_FIELDS as Record<string, HostFieldSpec>).map(([name, spec]) => [name, map(spec)])) as Record<HostFieldName, T>;
}
