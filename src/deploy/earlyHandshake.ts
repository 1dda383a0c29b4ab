// The SSH handshake made while the system builds (deployHost). Two ways it can fail, two answers:
// - waiting cannot mend it (a host key that is not the known one, a refused login): the deploy
//   ends at once with the connect error, instead of after a build that may take minutes;
// - anything else (the host is down, rebooting, its network blinks): it says nothing yet. When it
//   failed before the build ended, the host gets one new attempt after it, as if no early one had
//   been made: a host that came back during a long build is deployed. An attempt still under way
//   when the build ends is as fresh as a new one would be: its answer is the connect phase's.
import { isLastingConnectError } from "../ssh/diagnose";
import type { SshConnection } from "../ssh/connection";

export class EarlyHandshake {
    private attempt: Promise<void> | undefined;
    private failed = false;
    private failLasting!: (error: unknown) => void;
    /** Rejects with the connect error once the early attempt failed in a way waiting cannot mend; never resolves. */
    readonly lasting: Promise<never> = new Promise<never>((_, reject) => (this.failLasting = reject));

    constructor(
        private readonly connection: SshConnection,
        private readonly log: (line: string) => void = () => undefined,
    ) {
        this.lasting.catch(() => undefined);
    }

    /** Starts the handshake (once; later calls do nothing). */
    start(): void {
        if (this.attempt) return;
        this.attempt = this.connection.open();
        this.attempt.catch((error: unknown) => {
            this.failed = true;
            if (isLastingConnectError(error)) this.failLasting(error);
        });
    }

    /**
     * Once the build is done: the early master, or a new attempt when the early one had failed
     * by then (or none was started). Its error is the connect phase's.
     */
    async finish(): Promise<void> {
        if (this.attempt) {
            const failedDuringBuild = this.failed;
            try {
                await this.attempt;
                return;
            } catch (error) {
                if (isLastingConnectError(error) || !failedDuringBuild) throw error;
                this.log(`the handshake made during the build failed (${error instanceof Error ? error.message : String(error)}); trying again`);
            }
        }
        await this.connection.open();
    }

    /**
     * Runs work (the build) until it ends or the early handshake fails for good, whichever comes
     * first; `stop` is told when the handshake's failure ends the wait (work still runs: a build
     * shared with other hosts goes on for them; a build of this host alone is stopped).
     */
    async during<T>(work: Promise<T>, stop?: () => void): Promise<T> {
        work.catch(() => undefined);
        let lost = false;
        const failure = this.lasting.catch((error: unknown) => {
            lost = true;
            throw error;
        });
        failure.catch(() => undefined);
        try {
            return await Promise.race([work, failure]);
        } catch (error) {
            if (lost) stop?.();
            throw error;
        }
    }
}
