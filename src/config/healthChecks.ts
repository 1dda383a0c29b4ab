// Health checks run after activation (used by the confirm/rollback work; accepted and validated
// now so host files can already carry them). Every check retries because services often need a
// moment after a switch.
import { z } from "zod";
import { argv, boolean, distinctListOf, expecting, integerIn, listOf, matching, seconds } from "./rules";

/** Defaults for every check: 10 s per attempt, 3 more attempts after the first failure. */
export const HEALTH_CHECK_DEFAULTS = { timeout: 10, retries: 3 } as const;

const timeout = () => seconds({ max: 3600 }).default(HEALTH_CHECK_DEFAULTS.timeout);
const retries = () => integerIn(0, 100, "a number of retries from 0 to 100").default(HEALTH_CHECK_DEFAULTS.retries);

/** A command run on the host (argv, no shell); exit status 0 means healthy. */
export const commandCheckSchema = z.strictObject({ command: argv(), timeout: timeout(), retries: retries() }, expecting("a mapping with command, timeout, retries"));

/** A TCP port that must accept connections, checked from the deployer: `host`, or else the host's address. */
export const tcpCheckSchema = z.strictObject(
    {
        port: integerIn(1, 65535),
        host: matching(/^[A-Za-z0-9_.:%[\]-]+$/, "a host name or IP address").optional(),
        timeout: timeout(),
        retries: retries(),
    },
    expecting("a mapping with port, host, timeout, retries"),
);

/** An http(s) URL that must answer; with `status` it must answer exactly that, otherwise any 2xx. */
export const httpCheckSchema = z.strictObject(
    {
        url: matching(/^https?:\/\/[^\s/?#]+[^\s]*$/, "an http:// or https:// URL"),
        status: integerIn(100, 599, "an HTTP status code from 100 to 599").optional(),
        timeout: timeout(),
        retries: retries(),
    },
    expecting("a mapping with url, status, timeout, retries"),
);

/** systemd unit names; a name without a suffix means `.service`, as with systemctl. */
export const unitName = () => matching(/^[A-Za-z0-9:_.@\\-]+$/, 'a systemd unit name such as "nginx.service"');

export const healthChecksSchema = z.strictObject(
    {
        commands: listOf(commandCheckSchema, "a list of command checks").default([]),
        units: distinctListOf(unitName(), "a list of systemd unit names").default([]),
        tcp: listOf(tcpCheckSchema, "a list of TCP checks").default([]),
        http: listOf(httpCheckSchema, "a list of HTTP checks").default([]),
        /** Do not revert the host when checks fail; the deploy is reported with warnings. */
        keepGoing: boolean().default(false),
    },
    expecting("a mapping with commands, units, tcp, http, keepGoing"),
);

export type HealthChecksInput = z.input<typeof healthChecksSchema>;
export type HealthChecks = z.output<typeof healthChecksSchema>;
export type CommandCheck = z.output<typeof commandCheckSchema>;
export type TcpCheck = z.output<typeof tcpCheckSchema>;
export type HttpCheck = z.output<typeof httpCheckSchema>;

export const NO_HEALTH_CHECKS: HealthChecks = { commands: [], units: [], tcp: [], http: [], keepGoing: false };

/** Whether any check is configured (keepGoing alone is a policy for failed units, not a check). */
export function hasChecks(checks: Pick<HealthChecks, "commands" | "units" | "tcp" | "http">): boolean {
    return checks.commands.length + checks.units.length + checks.tcp.length + checks.http.length > 0;
}
