// The provider's Pulumi package schema (GetSchema; `pulumi package get-schema`), derived from the
// same zod definitions that validate the resources' inputs and describe their outputs, so the
// schema, the validation and the TypeScript types cannot drift apart.
import { z } from "zod";
import { HOOK_TYPE, hookInputsSchema, hookOutputFieldsSchema } from "./hookProvider";
import { hostInputsSchema, hostOutputFieldsSchema } from "./hostInputs";
import { PROVIDER_INFO_TOKEN } from "./providerInfo";

export const PACKAGE_NAME = "nixos";
import { HOST_TYPE } from "../resources/types";

/** A property in Pulumi's schema language (the part of it this package needs). */
export interface PropertySpec {
    type?: "string" | "number" | "integer" | "boolean" | "array" | "object";
    items?: PropertySpec;
    additionalProperties?: PropertySpec;
    $ref?: string;
    description?: string;
    /** The value is a secret: encrypted in the state, [secret] in previews (zod `.meta({ secret: true })`). */
    secret?: true;
}

export interface ObjectTypeSpec {
    type: "object";
    description?: string;
    properties: Record<string, PropertySpec>;
    required: string[];
}

interface JsonSchema {
    type?: string | string[];
    properties?: Record<string, JsonSchema>;
    required?: string[];
    items?: JsonSchema;
    additionalProperties?: JsonSchema | boolean;
    anyOf?: JsonSchema[];
    oneOf?: JsonSchema[];
    enum?: unknown[];
    const?: unknown;
    description?: string;
    secret?: boolean;
}

const ANY: PropertySpec = { $ref: "pulumi.json#/Any" };
const pascal = (name: string): string => name.charAt(0).toUpperCase() + name.slice(1);

/** Names of the object types, by the property that holds them (shared where the shape is shared). */
const TYPE_NAMES: Record<string, string> = {
    history: "DeploymentRecord",
    flake: "FlakeRevision",
    commands: "HealthCheckCommand",
    tcp: "HealthCheckTcp",
    http: "HealthCheckHttp",
    secrets: "SecretFile",
};

/** Turns JSON Schema (from zod) into Pulumi property specs; nested objects become named types. */
class SchemaBuilder {
    readonly types: Record<string, ObjectTypeSpec> = {};

    property(schema: JsonSchema, typeName: string): PropertySpec {
        const described = (spec: PropertySpec): PropertySpec => ({
            ...spec,
            ...(schema.description ? { description: schema.description } : {}),
            ...(schema.secret === true ? { secret: true as const } : {}),
        });
        const variants = (schema.anyOf ?? schema.oneOf)?.filter((variant) => variant.type !== "null");
        if (variants) return variants.length === 1 ? described(this.property(variants[0]!, typeName)) : described(ANY);
        const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
        if (type === undefined && schema.enum?.every((value) => typeof value === "string")) return described({ type: "string" });
        switch (type) {
            case "string":
            case "number":
            case "integer":
            case "boolean":
                return described({ type });
            case "array":
                return described({ type: "array", items: schema.items ? this.property(schema.items, typeName) : ANY });
            case "object":
                if (schema.properties) return described({ $ref: `#/types/${this.objectType(schema, typeName)}` });
                return described({
                    type: "object",
                    additionalProperties: typeof schema.additionalProperties === "object" ? this.property(schema.additionalProperties, typeName) : ANY,
                });
            default:
                return described(ANY);
        }
    }

    /** Registers an object type under `nixos:index:<Name>` and returns its token. */
    objectType(schema: JsonSchema, typeName: string): string {
        const token = `${PACKAGE_NAME}:index:${typeName}`;
        const { properties, required } = this.properties(schema);
        // A type used as input and output: a property is required only where both require it
        // (inputs may leave out what has a default).
        const seen = this.types[token]?.required;
        this.types[token] = {
            type: "object",
            ...(schema.description ? { description: schema.description } : {}),
            properties: { ...this.types[token]?.properties, ...properties },
            required: seen ? required.filter((key) => seen.includes(key)) : required,
        };
        return token;
    }

    properties(schema: JsonSchema): { properties: Record<string, PropertySpec>; required: string[] } {
        const properties: Record<string, PropertySpec> = {};
        for (const [key, value] of Object.entries(schema.properties ?? {})) {
            properties[key] = this.property(value, TYPE_NAMES[key] ?? pascal(key));
        }
        return { properties, required: [...(schema.required ?? [])] };
    }
}

const jsonSchemaOf = (schema: z.ZodType, io: "input" | "output"): JsonSchema =>
    z.toJSONSchema(schema, { io, unrepresentable: "any", target: "draft-2020-12" }) as JsonSchema;

/** `filled`: inputs the provider's check fills in when left out beyond zod defaults (Host: name, from the resource's name). */
function resourceSpec(builder: SchemaBuilder, description: string, inputs: z.ZodObject, outputFields: z.ZodObject, filled: readonly string[] = []) {
    const input = builder.properties(jsonSchemaOf(inputs, "input"));
    const output = builder.properties(jsonSchemaOf(inputs.extend(outputFields.shape), "output"));
    return {
        description,
        inputProperties: input.properties,
        requiredInputs: input.required.filter((key) => !filled.includes(key)),
        properties: output.properties,
        required: output.required,
    };
}

/** The whole package schema, as `pulumi package get-schema` prints it. */
export function packageSchema(version: string): Record<string, unknown> {
    const builder = new SchemaBuilder();
    const resources = {
        [HOST_TYPE]: resourceSpec(
            builder,
            "A NixOS server: its connection and the system (flake, attribute, store path) to deploy onto it. " +
                "A change of either copies the system's closure over SSH and activates it in place; the state records every deployment.",
            hostInputsSchema,
            hostOutputFieldsSchema,
            // check: withInputDefaults (hostProvider.ts)
            ["name"],
        ),
        [HOOK_TYPE]: resourceSpec(
            builder,
            "A command run on a host after each deploy that changed its generation or system (e.g. a migration). A failing hook fails the update but does not roll the system back.",
            hookInputsSchema,
            hookOutputFieldsSchema,
        ),
    };
    return {
        name: PACKAGE_NAME,
        displayName: "NixOS (nixos-fleet)",
        version,
        description: "Deploy NixOS systems from a flake onto servers over SSH, with previews, recorded generations and rollback.",
        keywords: ["nixos", "nix", "deployment", "category/infrastructure"],
        license: "Apache-2.0",
        meta: { moduleFormat: "(.*)" },
        resources,
        functions: {
            [PROVIDER_INFO_TOKEN]: {
                description: "Which nixos-fleet provider serves the stack (nixos-fleet's program calls it first, which also starts the plugin early).",
                outputs: { properties: { version: { type: "string", description: "The nixos-fleet package version of the provider plugin." } }, required: ["version"] },
            },
        },
        types: builder.types,
    };
}
