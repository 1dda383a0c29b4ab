// Turns what OpenSSH prints on a failed connection into an operator's hint. The patterns are the
// client's own messages (see also docs/operations guide, troubleshooting).
import { FleetError } from "../errors";
import type { SshTarget } from "./target";

interface Diagnosis {
    message: string;
    hint: string;
}

function where(target: SshTarget): string {
    return `${target.user}@${target.address}${target.port ? `:${target.port}` : ""}`;
}

export function diagnoseSshFailure(target: SshTarget, stderr: string, timedOut: boolean): Diagnosis {
    const at = where(target);
    if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/i.test(stderr) && /changed|mismatch|does not match|IDENTIFICATION/i.test(stderr)) {
        return {
            message: `the host key of ${at} does not match the pinned/known key`,
            hint: "if the server was reinstalled, verify its new key out of band, then update hostKey (or known_hosts); otherwise someone may be intercepting the connection",
        };
    }
    if (/No (\S+ )?host key is known|Host key verification failed/i.test(stderr)) {
        return {
            message: `the host key of ${at} is not known, so the connection was refused`,
            hint: `pin it as hostKey in the host's file or add it to known_hosts after verifying it out of band (e.g. ssh-keyscan on a trusted network)`,
        };
    }
    if (/Permission denied/i.test(stderr)) {
        return {
            message: `${at} refused the login (permission denied)`,
            hint: `check that your key (identityFile or ssh-agent) is in ${target.user}'s authorized_keys on the host`,
        };
    }
    if (/Connection refused/i.test(stderr)) {
        return {
            message: `${at} refused the connection`,
            hint: "check that the host is up and sshd listens on that address and port",
        };
    }
    if (/Could not resolve hostname|Name or service not known/i.test(stderr)) {
        return {
            message: `cannot resolve ${target.address}`,
            hint: "check the address in the host's file (or the Host alias in your ssh_config)",
        };
    }
    if (timedOut || /timed out|Connection timed out|banner exchange/i.test(stderr)) {
        return {
            message: `${at} did not answer within ${target.connectTimeout ?? 10}s`,
            hint: "check that the host is up and reachable (network, VPN, firewall); raise connectTimeout for slow links",
        };
    }
    if (/sudo: a password is required|sudo: .*not allowed|is not in the sudoers/i.test(stderr)) {
        return {
            message: `${target.user} cannot run sudo without a password on ${target.address}`,
            hint: "give the deploy user passwordless sudo (NixOS: security.sudo.wheelNeedsPassword = false, or a NOPASSWD rule), or deploy as root",
        };
    }
    return {
        message: `ssh to ${at} failed`,
        hint: "run the same connection by hand (ssh -v) to see why",
    };
}

export function sshError(target: SshTarget, stderr: string, timedOut: boolean): FleetError {
    const { message, hint } = diagnoseSshFailure(target, stderr, timedOut);
    return new FleetError({ phase: "connect", host: target.name, message, hint, detail: stderr });
}
