/**
 * Native (sparse, exponential) histograms, as Prometheus and client_golang define them.
 *
 * A schema `s` (-4..8) splits every power of two into 2^s buckets: bucket `k` holds the values in
 * (2^((k-1)/2^s), 2^(k/2^s)], so each boundary is the previous one times 2^(2^-s) and a bucket's
 * relative width is the same everywhere. Values whose absolute value is at most the zero
 * threshold go to one zero bucket. The key of a value is computed as client_golang does: from
 * its binary exponent and mantissa (Go's `math.Frexp`), a search among the 2^s boundaries of one
 * power of two for positive schemas, and a shift for the others. No logarithm is taken.
 *
 * Memory is bounded: the counts of each side (positive, negative) live in one dense
 * Float64Array window covering the keys from the lowest to the highest observed, at most
 * `maxBuckets` keys in all. When a new observation would need more, the resolution is halved
 * (the schema decreases by one: buckets 2j-1 and 2j merge into bucket j) until it fits, as
 * client_golang does when it exceeds its maximum number of buckets. An observation that lands
 * in the window (the common case) is a key computation and one increment: no allocation.
 */
import { PB, ProtoWriter } from './protobuf'

/** Smallest schema (16 powers of two per bucket). */
export const MIN_SCHEMA = -4
/** Largest schema (256 buckets per power of two). */
export const MAX_SCHEMA = 8
/** client_golang's default bucket factor (schema 3). */
export const DEFAULT_BUCKET_FACTOR = 1.1
/** client_golang's default most buckets per histogram. */
export const DEFAULT_MAX_BUCKETS = 160
/** client_golang's default zero threshold. */
export const DEFAULT_ZERO_THRESHOLD = 2 ** -128

/** Native histogram settings, resolved from the `nativeHistograms` option. */
export interface NativeHistogramConfig {
  /** The largest bucket factor wanted; the schema is the coarsest whose factor is not larger. */
  readonly bucketFactor: number
  /** Schema picked from `bucketFactor`. */
  readonly schema: number
  /** Most buckets a series keeps (positive and negative, lowest to highest key). */
  readonly maxBuckets: number
  /** Width of the zero bucket: |v| <= zeroThreshold counts there. */
  readonly zeroThreshold: number
  /** Whether the protobuf exposition keeps the classic buckets beside the native ones. */
  readonly classic: boolean
}

/**
 * The schema for a bucket factor, as client_golang's `pickSchema`: the largest resolution whose
 * bucket growth factor 2^(2^-schema) is at most `factor` (1.1 gives 3; 2 gives 0).
 */
export function schemaForFactor (factor: number): number {
  const floor = Math.floor(Math.log2(Math.log2(factor)))
  if (floor <= -MAX_SCHEMA) return MAX_SCHEMA
  if (floor >= -MIN_SCHEMA) return MIN_SCHEMA
  return -floor
}

/** Upper bound of bucket `key` at `schema`: 2^(key / 2^schema). */
export function bucketUpperBound (key: number, schema: number): number {
  return 2 ** (key / 2 ** schema)
}

/** Relative error of a quantile estimated at the middle of a bucket of this schema, at most. */
export function relativeError (schema: number): number {
  const base = 2 ** (2 ** -schema)
  return (base - 1) / (base + 1)
}

// The boundaries of one power of two for each positive schema, scaled to Frexp's [0.5, 1).
const BOUNDS: Float64Array[] = []
// For each positive schema, indexed by the top SLOT_BITS bits of the mantissa: how many
// boundaries lie below the start of that slice of [0.5, 1). A slice is narrower than the gap
// between two boundaries, so the search is this lookup and at most one comparison.
const SLOT_BITS = 10
const SLOTS: Uint16Array[] = []
for (let s = 1; s <= MAX_SCHEMA; s++) {
  const n = 2 ** s
  const b = new Float64Array(n)
  for (let i = 0; i < n; i++) b[i] = 2 ** (i / n) / 2
  BOUNDS[s] = b
  const slots = new Uint16Array(2 ** SLOT_BITS)
  for (let j = 0; j < slots.length; j++) {
    const start = 0.5 + j / 2 ** (SLOT_BITS + 1)
    let below = 0
    while (below < n && b[below] < start) below++
    slots[j] = below
  }
  SLOTS[s] = slots
}

const F64 = new Float64Array(1)
const U32 = new Uint32Array(F64.buffer)
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0 // the word holding the exponent

/**
 * The bucket key of a finite positive value at a schema, as client_golang computes it: Frexp
 * splits v into frac in [0.5, 1) and exp with v = frac * 2^exp.
 */
export function bucketKey (v: number, schema: number): number {
  F64[0] = v
  let hi = U32[HI]
  let e = (hi >>> 20) & 0x7ff
  let exp: number
  if (e === 0) { // subnormal: scale into the normal range first
    F64[0] = v * 2 ** 64
    hi = U32[HI]
    e = (hi >>> 20) & 0x7ff
    exp = e - 1022 - 64
  } else {
    exp = e - 1022
  }
  U32[HI] = (hi & 0x800fffff) | (1022 << 20)
  const frac = F64[0]
  if (schema > 0) {
    const bounds = BOUNDS[schema]
    const n = bounds.length
    // The first bound >= frac (Go's sort.SearchFloat64s): the slot's count of bounds below it,
    // then past any bound inside the slot that is still below frac.
    let i = SLOTS[schema][(hi >>> (20 - SLOT_BITS)) & ((1 << SLOT_BITS) - 1)]
    while (i < n && bounds[i] < frac) i++
    return i + (exp - 1) * n
  }
  let key = exp
  if (frac === 0.5) key--
  const shift = -schema
  return (key + (1 << shift) - 1) >> shift
}

/**
 * Native buckets as the shared-directory files carry them (`lib/multiprocess.ts`):
 * `[schema, zeroThreshold, zeroCount, positiveOffset, positiveCounts, negativeOffset,
 * negativeCounts]`, each side's counts dense from the key `offset`, from its lowest populated
 * key to its highest.
 */
export type NativeSnapshot = [number, number, number, number, number[], number, number[]]

/** Whether a value read from a file has the shape of a `NativeSnapshot`. */
export function isNativeSnapshot (x: unknown): x is NativeSnapshot {
  if (!Array.isArray(x) || x.length !== 7) return false
  const [schema, zt, zero, po, p, no, n] = x as unknown[]
  const int = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v)
  const counts = (v: unknown): boolean => Array.isArray(v) && v.every((c) => typeof c === 'number' && c >= 0 && Number.isFinite(c))
  return int(schema) && (schema as number) >= MIN_SCHEMA && (schema as number) <= MAX_SCHEMA && typeof zt === 'number' && zt >= 0 && Number.isFinite(zt) &&
    typeof zero === 'number' && zero >= 0 && int(po) && counts(p) && int(no) && counts(n)
}

/** A side's populated keys as `[offset, counts]`. */
function dense (side: Side): [number, number[]] {
  if (side.span === 0) return [0, []]
  return [side.lo, Array.from(side.counts.subarray(side.lo - side.offset, side.hi - side.offset + 1))]
}

/**
 * Subtracts base counts (`shift` schemas finer than the snapshot's) from the side at
 * `out[at]`, `out[at + 1]`, then trims the zeros at both ends.
 */
function subtract (out: NativeSnapshot, at: 3 | 5, offset: number, counts: readonly number[], shift: number): void {
  let from = out[at] as number
  let c = out[at + 1] as number[]
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] === 0) continue
    let k = offset + i
    for (let s = 0; s < shift; s++) k = halve(k)
    if (k < from) { c = [...new Array<number>(from - k).fill(0), ...c]; from = k }
    while (k - from >= c.length) c.push(0)
    c[k - from] -= counts[i]
  }
  let lo = 0
  let hi = c.length
  while (lo < hi && c[lo] === 0) lo++
  while (hi > lo && c[hi - 1] === 0) hi--
  out[at] = lo === hi ? 0 : from + lo
  out[at + 1] = c.slice(lo, hi)
}

// lo and hi of a side without observations: any key is below the one and above the other.
const EMPTY_LO = 0x7fffffff
const EMPTY_HI = -0x7fffffff

/** One side (positive or negative) of a native histogram: counts of keys [offset, offset + counts.length). */
class Side {
  offset = 0
  counts: Float64Array = new Float64Array(0)
  /** Lowest and highest key observed; EMPTY_LO and EMPTY_HI while empty. */
  lo = EMPTY_LO
  hi = EMPTY_HI

  get span (): number {
    return this.hi >= this.lo ? this.hi - this.lo + 1 : 0
  }

  count (key: number): number {
    const i = key - this.offset
    return i >= 0 && i < this.counts.length ? this.counts[i] : 0
  }

  /** Places the window over [lo, hi] (keys of the current counts moved to `keyOf(key)`) with room around. */
  rebuild (lo: number, hi: number, capacity: number, keyOf: (k: number) => number): void {
    const span = hi - lo + 1
    const size = Math.max(capacity, span)
    const offset = lo - Math.floor((size - span) / 2)
    const next = new Float64Array(size)
    for (let k = this.lo; k <= this.hi; k++) {
      const c = this.counts[k - this.offset]
      if (c !== 0) next[keyOf(k) - offset] += c
    }
    this.offset = offset
    this.counts = next
    this.lo = lo
    this.hi = hi
  }
}

const same = (k: number): number => k
const halve = (k: number): number => (k + 1) >> 1

/** The native buckets of one histogram series. */
export class NativeBuckets {
  schema: number
  /** Width of the zero bucket: the configured one, or wider after merging a wider one. */
  zeroThreshold: number
  zeroCount = 0
  /** The widest zero threshold merged, once two differed (0 until then): see `widenZero`. */
  private widenTo = 0
  /** While widened: the key of the bucket holding `widenTo`, at the current schema. */
  private zeroKey = 0
  readonly positive = new Side()
  readonly negative = new Side()
  private readonly config: NativeHistogramConfig

  constructor (config: NativeHistogramConfig) {
    this.config = config
    this.schema = config.schema
    this.zeroThreshold = config.zeroThreshold
  }

  /** Records one observation (non-finite values are left out of the buckets). */
  observe (v: number): void {
    const zt = this.zeroThreshold
    let side: Side
    let k: number
    if (v > zt) {
      if (v === Infinity) return
      side = this.positive
      k = bucketKey(v, this.schema)
    } else if (v < -zt) {
      if (v === -Infinity) return
      side = this.negative
      k = bucketKey(-v, this.schema)
    } else {
      if (v === v) this.zeroCount++ // NaN is left out
      return
    }
    if (k >= side.lo && k <= side.hi) {
      side.counts[k - side.offset]++
      return
    }
    this.add(side, k, 1)
  }

  /**
   * Adds `c` to key `k` (at the current schema) of `side`, widening the window and reducing the
   * resolution while the buckets would exceed maxBuckets.
   */
  private add (side: Side, k: number, c: number): void {
    const max = this.config.maxBuckets
    for (;;) {
      if (this.widenTo > 0 && k <= this.zeroKey) { this.zeroCount += c; return }
      const other = side === this.positive ? this.negative : this.positive
      const lo = side.span === 0 ? k : Math.min(side.lo, k)
      const hi = side.span === 0 ? k : Math.max(side.hi, k)
      if (hi - lo + 1 + other.span <= max || this.schema <= MIN_SCHEMA) {
        const i = k - side.offset
        if (i >= 0 && i < side.counts.length) {
          side.counts[i] += c
          side.lo = lo
          side.hi = hi
          return
        }
        side.rebuild(lo, hi, Math.min(max, Math.max(16, 2 * (hi - lo + 1))), same)
      } else {
        this.reduce()
        k = halve(k)
      }
    }
  }

  /** Halves the resolution: schema - 1, buckets 2j-1 and 2j merged into j. */
  reduce (): void {
    for (const side of [this.positive, this.negative]) {
      if (side.span === 0) continue
      side.rebuild(halve(side.lo), halve(side.hi), side.counts.length, halve)
    }
    this.schema--
    if (this.widenTo > 0) this.widenZero()
  }

  /** Adds another series' native buckets (any schema: the finer one is reduced to the coarser first). */
  merge (from: NativeBuckets): void {
    this.mergeSnapshot(from.snapshot())
  }

  /**
   * Adds native buckets as a snapshot carries them (another process's, or the archive's). The
   * finer schema is reduced to the coarser, the zero bucket widened to the wider threshold (as
   * Prometheus reconciles two histograms), and the resolution reduced further while the
   * buckets would exceed maxBuckets. The result does not depend on the order of the merges: its
   * schema is the finest at or below every source's at which all the buckets fit.
   * A snapshot without observations changes nothing.
   */
  mergeSnapshot (from: NativeSnapshot): void {
    const [schema, zeroThreshold, zeroCount, posOffset, pos, negOffset, neg] = from
    if (zeroCount === 0 && pos.length === 0 && neg.length === 0) return
    if (this.widenTo > 0 ? zeroThreshold > this.widenTo : zeroThreshold !== this.zeroThreshold) this.reconcileZero([zeroThreshold])
    while (this.schema > schema) this.reduce()
    this.zeroCount += zeroCount
    const sides: Array<[number, readonly number[], Side]> = [[posOffset, pos, this.positive], [negOffset, neg, this.negative]]
    for (const [offset, counts, dst] of sides) {
      for (let i = 0; i < counts.length; i++) {
        const c = counts[i]
        if (c === 0) continue
        // add() may reduce this histogram's schema while merging: map each key to the current one.
        let key = offset + i
        for (let s = this.schema; s < schema; s++) key = halve(key)
        this.add(dst, key, c)
      }
    }
  }

  /**
   * Counts `c` observations of value `v` (finite): how the classic buckets of a source without
   * native ones are carried over, each at a value standing for its bucket (`lib/multiprocess.ts`).
   */
  addValue (v: number, c: number): void {
    if (c === 0) return
    const zt = this.zeroThreshold
    if (v > zt) this.add(this.positive, bucketKey(v, this.schema), c)
    else if (v < -zt) this.add(this.negative, bucketKey(-v, this.schema), c)
    else this.zeroCount += c
  }

  /**
   * Prepares for merging sources with these zero thresholds. When one differs from this
   * histogram's, the zero bucket is widened as Prometheus reconciles two histograms: the bucket
   * holding the widest threshold, and every bucket below it, count in the zero bucket, whose
   * threshold becomes that bucket's upper bound (and follows it when the resolution is
   * reduced). Given every threshold before the first merge, the result does not depend on the
   * order of the merges; a later wider one is still taken in, at the cost of that guarantee.
   */
  reconcileZero (thresholds: Iterable<number>): void {
    let t = this.widenTo > 0 ? this.widenTo : this.zeroThreshold
    let differ = this.widenTo > 0
    for (const z of thresholds) {
      if (z !== this.zeroThreshold) differ = true
      if (z > t) t = z
    }
    if (!differ || !(t > 0)) return
    this.widenTo = Math.max(t, this.zeroThreshold)
    this.widenZero()
  }

  /** Moves the buckets up to the one holding `widenTo` into the zero bucket (see `reconcileZero`). */
  private widenZero (): void {
    const k = bucketKey(this.widenTo, this.schema)
    this.zeroKey = k
    for (const side of [this.positive, this.negative]) {
      if (side.span === 0 || side.lo > k) continue
      const top = Math.min(k, side.hi)
      for (let key = side.lo; key <= top; key++) {
        const i = key - side.offset
        this.zeroCount += side.counts[i]
        side.counts[i] = 0
      }
      let next = top + 1
      while (next <= side.hi && side.counts[next - side.offset] === 0) next++
      if (next > side.hi) { side.lo = EMPTY_LO; side.hi = EMPTY_HI } else side.lo = next
    }
    this.zeroThreshold = bucketUpperBound(k, this.schema)
  }

  /**
   * The buckets as a snapshot, less `base` (an earlier snapshot of this same series: its
   * schema is never finer than now, since a series only ever reduces its resolution).
   */
  snapshot (base?: NativeSnapshot): NativeSnapshot {
    const out: NativeSnapshot = [this.schema, this.zeroThreshold, this.zeroCount, ...dense(this.positive), ...dense(this.negative)]
    if (base === undefined) return out
    const [bSchema, , bZero, bPosOffset, bPos, bNegOffset, bNeg] = base
    out[2] -= bZero
    const shift = bSchema - this.schema
    subtract(out, 3, bPosOffset, bPos, shift)
    subtract(out, 5, bNegOffset, bNeg, shift)
    return out
  }

  /** Sets every count to zero, keeping the schema reached and the window. */
  reset (): void {
    this.zeroCount = 0
    this.zeroThreshold = this.config.zeroThreshold
    this.widenTo = 0
    for (const side of [this.positive, this.negative]) {
      side.counts.fill(0)
      side.lo = EMPTY_LO
      side.hi = EMPTY_HI
    }
  }

  /** Appends the native fields of a `Histogram` message. */
  encode (w: ProtoWriter): void {
    const f = PB.histogram
    w.sint(f.schema, this.schema)
    w.double(f.zeroThreshold, this.zeroThreshold)
    if (this.zeroCount !== 0) w.uint(f.zeroCount, this.zeroCount)
    encodeSide(w, this.negative, f.negativeSpan, f.negativeDelta)
    if (this.positive.span === 0 && this.negative.span === 0 && this.zeroThreshold === 0) {
      // A native histogram without buckets and zero threshold needs a no-op span to be one.
      const at = w.begin(f.positiveSpan)
      w.sint(PB.span.offset, 0)
      w.uint(PB.span.length, 0)
      w.end(at)
      return
    }
    encodeSide(w, this.positive, f.positiveSpan, f.positiveDelta)
  }
}

/** Spans and deltas of one side; gaps of up to two empty buckets stay inside a span (as client_golang). */
function encodeSide (w: ProtoWriter, side: Side, spanField: number, deltaField: number): void {
  if (side.span === 0) return
  // Spans as [offset, length] pairs: the first offset is its starting key, later ones the gap.
  const spans: number[] = [side.lo, 0]
  let last = side.lo - 1
  for (let k = side.lo; k <= side.hi; k++) {
    if (side.count(k) === 0) continue
    const gap = k - last - 1
    if (gap > 2) spans.push(gap, 1)
    else spans[spans.length - 1] += gap + 1
    last = k
  }
  for (let i = 0; i < spans.length; i += 2) {
    const at = w.begin(spanField)
    w.sint(PB.span.offset, spans[i])
    w.uint(PB.span.length, spans[i + 1])
    w.end(at)
  }
  const at = w.begin(deltaField)
  let prev = 0
  let k = side.lo
  for (let i = 0; i < spans.length; i += 2) {
    if (i > 0) k += spans[i]
    for (let j = 0; j < spans[i + 1]; j++, k++) {
      const c = side.count(k)
      w.varint(c >= prev ? (c - prev) * 2 : (prev - c) * 2 - 1)
      prev = c
    }
  }
  w.end(at)
}
