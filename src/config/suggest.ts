// "did you mean …?" for misspelt field names, host names and tags.

/** The closest candidate within a small edit distance, or undefined when nothing is close. */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
    const list = [...candidates];
    // A truncated name ("sshConfig" for "sshConfigFile") is far in edits but obvious to people.
    const extended = word.length >= 3 ? list.find((candidate) => candidate.toLowerCase().startsWith(word.toLowerCase())) : undefined;
    if (extended !== undefined) return extended;
    const limit = Math.max(1, Math.floor(word.length / 3));
    let best: { candidate: string; distance: number } | undefined;
    for (const candidate of list) {
        const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
        if (distance <= limit && (!best || distance < best.distance)) best = { candidate, distance };
    }
    return best?.candidate;
}

/** `did you mean "port"? ` or an empty string. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
    const match = closestMatch(word, candidates);
    return match === undefined ? "" : `did you mean "${match}"? `;
}

/** Edit distance counting insertions, deletions, substitutions and swaps of neighbours ("prot" → "port" is 1). */
export function editDistance(a: string, b: string): number {
    const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
    const at = (i: number, j: number): number => rows[i]?.[j] ?? 0;
    for (let i = 1; i <= a.length; i++) {
        for (let j = 1; j <= b.length; j++) {
            const cost = a[i - 1] === b[j - 1] ? 0 : 1;
            let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
            if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
            rows[i]![j] = best;
        }
    }
    return at(a.length, b.length);
}
