// Output of many hosts at once, readable: each complete line is written with its host's name in
// front (`[psi] …`), so lines of different hosts never mix within a line. A partial line waits
// for its end (or for flush, when the stream ends).

export class LinePrefixer {
    private pending = "";

    constructor(
        private readonly prefix: string,
        private readonly write: (text: string) => void,
    ) {}

    /** Takes a chunk of output; writes the complete lines in it. */
    push(chunk: string): void {
        const text = this.pending + chunk;
        const end = text.lastIndexOf("\n");
        if (end < 0) {
            this.pending = text;
            return;
        }
        this.pending = text.slice(end + 1);
        this.write(prefixed(this.prefix, text.slice(0, end)));
    }

    /** Writes what is left of a last line without a line break (with one added). */
    flush(): void {
        if (this.pending === "") return;
        const rest = this.pending;
        this.pending = "";
        this.write(prefixed(this.prefix, rest));
    }
}

/** Every line of text (which has no final line break) with the prefix; a CRLF line ending loses its CR. */
export function prefixed(prefix: string, text: string): string {
    return text
        .split("\n")
        .map((line) => `${prefix}${line.replace(/\r$/, "")}\n`)
        .join("");
}
