/**
 * "Did you mean …?" for a mistyped command, option or source name: the candidate nearest to
 * `input` by edit distance (Damerau–Levenshtein, so a swapped pair of letters counts once), when
 * it is near enough to be a typo rather than a different word.
 */

/** Edit distance with adjacent transpositions (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate closest to `input` (case-insensitive), or undefined when none is within a typo's reach. */
export function closestName(input: string, candidates: Iterable<string>): string | undefined {
  const needle = input.toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const lc = c.toLowerCase();
    const distance = lc.startsWith(needle) && needle.length >= 3 ? 0.5 : editDistance(needle, lc);
    if (distance < bestDistance) {
      best = c;
      bestDistance = distance;
    }
  }
  // A third of the length, at least 1 and at most 3 edits: "tokn" → "token", not "fetch" → "health".
  const reach = Math.min(3, Math.max(1, Math.ceil(needle.length / 3)));
  return best !== undefined && bestDistance <= reach ? best : undefined;
}

/** " (did you mean X?)" or "". */
export function didYouMean(input: string, candidates: Iterable<string>, quote: (s: string) => string = (s) => `"${s}"`): string {
  const c = closestName(input, candidates);
  return c === undefined ? '' : ` (did you mean ${quote(c)}?)`;
}
