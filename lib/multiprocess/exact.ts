/**
 * Exact sums of floating-point numbers (pure). Histogram and summary `_sum`s are added this way
 * across processes, so the result does not depend on the order of the processes, nor on which
 * of them were merged into the archive: an unchanged total is rendered identically at every
 * scrape, and a growing one never shows a rounding dip (which Prometheus would take for a
 * counter reset).
 */

/**
 * Adds `x` to a list of non-overlapping partials exactly (Shewchuk's algorithm, as in Python's
 * `math.fsum`). `x` must be finite (see `ExactSum` for the others).
 */
export function addExact (partials: number[], x: number): void {
  let i = 0
  for (let j = 0; j < partials.length; j++) {
    let y = partials[j]
    if (Math.abs(x) < Math.abs(y)) { const t = x; x = y; y = t }
    const hi = x + y
    const lo = y - (hi - x)
    if (lo !== 0) partials[i++] = lo
    x = hi
  }
  partials.length = i
  partials.push(x)
}

/** The correctly rounded value of exact partials (`math.fsum`'s final step). */
export function exactValue (partials: readonly number[]): number {
  let n = partials.length
  if (n === 0) return 0
  let hi = partials[--n]
  let lo = 0
  while (n > 0) {
    const x = hi
    const y = partials[--n]
    hi = x + y
    const yr = hi - x
    lo = y - yr
    if (lo !== 0) break
  }
  if (n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0))) {
    const y = lo * 2
    const x = hi + y
    if (y === x - hi) hi = x
  }
  return hi
}

/**
 * An exact running sum: the finite addends as exact partials, the others (NaN, ±Infinity)
 * added as IEEE 754 adds them (`special`: 0 while there is none; +Inf and -Inf make NaN), which
 * decide the value when present, as in a plain sum.
 */
export interface ExactSum {
  partials: number[]
  special: number
}

/** An empty exact sum. */
export function exactSum (): ExactSum {
  return { partials: [], special: 0 }
}

/** Adds any number to an exact sum. */
export function addToSum (sum: ExactSum, x: number): void {
  if (Number.isFinite(x)) addExact(sum.partials, x)
  else sum.special += x
}

/** The value of an exact sum: correctly rounded, or the non-finite value its addends make. */
export function sumValue (sum: ExactSum): number {
  return sum.special === 0 ? exactValue(sum.partials) : sum.special
}
