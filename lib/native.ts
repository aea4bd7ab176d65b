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
 * Native buckets as the shared-directory files carry them (`lib/multiprocess/`), one flat
 * array: `[schema, zeroThreshold, zeroCount, positiveOffset, n, ...positiveCounts (n numbers),
 * negativeOffset, ...negativeCounts]`. Each side's counts run from the key `offset` (its lowest
 * populated bucket) to its highest populated bucket, one number per key, except that a run of
 * k empty buckets is written as the one number -k (counts are never negative): spread-out
 * histograms stay small, and a file holds one array per series.
 */
export type NativeSnapshot = number[]

const POS = 5 // index of the first positive count

/** Index of the negative offset in a snapshot. */
function negAt (snap: readonly number[]): number {
  return POS + snap[4]
}

/** Whether a value read from a file (its zero threshold already filled in) has the shape of a `NativeSnapshot`. */
export function isNativeSnapshot (x: unknown): x is NativeSnapshot {
  if (!Array.isArray(x) || x.length < 6) return false
  const schema = x[0]
  const zt = x[1]
  const n = x[4]
  if (!Number.isInteger(schema) || schema < MIN_SCHEMA || schema > MAX_SCHEMA || typeof zt !== 'number' || !(zt >= 0) || !Number.isFinite(zt)) return false
  if (typeof x[2] !== 'number' || !(x[2] >= 0) || !Number.isInteger(x[3]) || !Number.isInteger(n) || n < 0 || POS + n >= x.length || !Number.isInteger(x[POS + n])) return false
  for (let i = POS; i < x.length; i++) {
    if (i === POS + n) continue
    const c = x[i]
    if (typeof c !== 'number' || !Number.isFinite(c) || (c < 0 && !Number.isInteger(c))) return false
  }
  return true
}

/** Calls `fn` with each populated key of the counts `snap[from..to)`, the first at key `offset`, and its count. */
function eachCount (snap: readonly number[], from: number, to: number, offset: number, fn: (key: number, c: number) => void): void {
  let key = offset
  for (let i = from; i < to; i++) {
    const c = snap[i]
    if (c < 0) { key -= c; continue }
    if (c !== 0) fn(key, c)
    key++
  }
}

/** The key after the last of the counts `snap[from..to)` whose first is at `offset`. */
function endKey (snap: readonly number[], from: number, to: number, offset: number): number {
  let key = offset
  for (let i = from; i < to; i++) key += snap[i] < 0 ? -snap[i] : 1
  return key
}

/** Appends a side from dense counts (`dense[i]` for key `from + i`, `i` in `start..end`): its offset, with `withLength` how many numbers follow, then its counts with empty runs as `-k`. */
function appendSide (out: number[], dense: ArrayLike<number>, from: number, start: number, end: number, withLength: boolean): void {
  while (start < end && dense[start] === 0) start++
  while (end > start && dense[end - 1] === 0) end--
  out.push(start === end ? 0 : from + start)
  const at = out.length
  if (withLength) out.push(0)
  let zeros = 0
  for (let i = start; i < end; i++) {
    const c = dense[i]
    if (c === 0) { zeros++; continue }
    if (zeros === 1) out.push(0)
    else if (zeros > 1) out.push(-zeros)
    zeros = 0
    out.push(c)
  }
  if (withLength) out[at] = out.length - at - 1
}

/** Appends a side of native buckets (see `appendSide`). */
function appendLiveSide (out: number[], side: Side, withLength: boolean): void {
  if (side.span === 0) appendSide(out, side.counts, 0, 0, 0, withLength)
  else appendSide(out, side.counts, side.offset, side.lo - side.offset, side.hi - side.offset + 1, withLength)
}

/** The counts of a snapshot side less those of a base snapshot's side `shift` schemas finer (reduced to this one), appended. */
function appendDifference (out: number[], snap: readonly number[], from: number, to: number, offset: number, base: readonly number[], bFrom: number, bTo: number, bOffset: number, shift: number, withLength: boolean): void {
  const entries = new Map<number, number>()
  eachCount(snap, from, to, offset, (k, c) => { entries.set(k, c) })
  eachCount(base, bFrom, bTo, bOffset, (k, c) => {
    for (let s = 0; s < shift; s++) k = halve(k)
    entries.set(k, (entries.get(k) ?? 0) - c)
  })
  let lo = Infinity
  let hi = -Infinity
  for (const [k, c] of entries) if (c !== 0) { if (k < lo) lo = k; if (k > hi) hi = k }
  if (lo > hi) { appendSide(out, [], 0, 0, 0, withLength); return }
  const dense = new Array<number>(hi - lo + 1).fill(0)
  for (const [k, c] of entries) if (k >= lo && k <= hi) dense[k - lo] = c
  appendSide(out, dense, lo, 0, dense.length, withLength)
}

// lo and hi of a side without observations: any key is below the one and above the other.
const EMPTY_LO = 0x7fffffff
const EMPTY_HI = -0x7fffffff

/** The window of a side that has never had one (never written: its length is 0). */
const NO_COUNTS = new Float64Array(0)

/** One side (positive or negative) of a native histogram: counts of keys [offset, offset + counts.length). */
class Side {
  offset = 0
  counts: Float64Array = NO_COUNTS
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

  /**
   * Adds native buckets as a snapshot carries them (another process's, or the archive's). The
   * finer schema is reduced to the coarser, the zero bucket widened to the wider threshold (as
   * Prometheus reconciles two histograms), and the resolution reduced further while the
   * buckets would exceed maxBuckets. The result does not depend on the order of the merges: its
   * schema is the finest at or below every source's at which all the buckets fit.
   * A snapshot without observations changes nothing.
   */
  mergeSnapshot (from: NativeSnapshot): void {
    const schema = from[0]
    const zeroThreshold = from[1]
    const neg = negAt(from)
    if (from[2] === 0 && from[4] === 0 && from.length === neg + 1) return
    if (this.widenTo > 0 ? zeroThreshold > this.widenTo : zeroThreshold !== this.zeroThreshold) this.reconcileZero([zeroThreshold])
    while (this.schema > schema) this.reduce()
    this.zeroCount += from[2]
    // add() may reduce this histogram's schema while merging: each key is mapped to the current one.
    eachCount(from, POS, neg, from[3], (k, c) => { for (let s = this.schema; s < schema; s++) k = halve(k); this.add(this.positive, k, c) })
    eachCount(from, neg + 1, from.length, from[neg], (k, c) => { for (let s = this.schema; s < schema; s++) k = halve(k); this.add(this.negative, k, c) })
  }

  /**
   * `mergeSnapshot` of each, the same result, in one pass when it can: when every source has
   * this histogram's zero threshold and their buckets, at the coarsest schema among them, fit
   * maxBuckets, each side's window is placed once over all their keys and the counts are added
   * straight in (a scrape does this for every series of every process).
   */
  mergeSnapshots (from: readonly NativeSnapshot[]): void {
    let schema = this.schema
    const zt = this.zeroThreshold
    let plain = this.widenTo === 0
    for (const f of from) {
      if (f[1] !== zt) plain = false
      if ((f[2] !== 0 || f.length > POS + 1) && f[0] < schema) schema = f[0]
    }
    if (plain) {
      while (this.schema > schema) this.reduce()
      // Each side's lowest and highest key over this histogram and every source, at `schema`.
      let plo = this.positive.span === 0 ? EMPTY_LO : this.positive.lo
      let phi = this.positive.span === 0 ? EMPTY_HI : this.positive.hi
      let nlo = this.negative.span === 0 ? EMPTY_LO : this.negative.lo
      let nhi = this.negative.span === 0 ? EMPTY_HI : this.negative.hi
      for (const f of from) {
        const neg = negAt(f)
        const shift = f[0] - schema
        if (neg > POS) {
          let first = f[3]
          let last = endKey(f, POS, neg, first) - 1
          for (let s = 0; s < shift; s++) { first = halve(first); last = halve(last) }
          if (first < plo) plo = first
          if (last > phi) phi = last
        }
        if (f.length > neg + 1) {
          let first = f[neg]
          let last = endKey(f, neg + 1, f.length, first) - 1
          for (let s = 0; s < shift; s++) { first = halve(first); last = halve(last) }
          if (first < nlo) nlo = first
          if (last > nhi) nhi = last
        }
      }
      const span = (phi >= plo ? phi - plo + 1 : 0) + (nhi >= nlo ? nhi - nlo + 1 : 0)
      if (span <= this.config.maxBuckets) {
        this.place(this.positive, plo, phi)
        this.place(this.negative, nlo, nhi)
        const pos = this.positive
        const negative = this.negative
        for (const f of from) {
          const neg = negAt(f)
          const shift = f[0] - schema
          this.zeroCount += f[2]
          eachCount(f, POS, neg, f[3], (k, c) => { for (let s = 0; s < shift; s++) k = halve(k); pos.counts[k - pos.offset] += c })
          eachCount(f, neg + 1, f.length, f[neg], (k, c) => { for (let s = 0; s < shift; s++) k = halve(k); negative.counts[k - negative.offset] += c })
        }
        return
      }
    }
    for (const f of from) this.mergeSnapshot(f)
  }

  /** Makes `side`'s window cover the keys lo..hi and takes them as its populated range (nothing when hi < lo). */
  private place (side: Side, lo: number, hi: number): void {
    if (hi < lo) return
    if (lo < side.offset || hi >= side.offset + side.counts.length) side.rebuild(lo, hi, hi - lo + 1, same)
    side.lo = lo
    side.hi = hi
  }

  /**
   * Counts `c` observations of value `v` (finite): how the classic buckets of a source without
   * native ones are carried over, each at a value standing for its bucket (`lib/multiprocess/`).
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
    const out: number[] = [this.schema, this.zeroThreshold, this.zeroCount]
    if (base === undefined) {
      appendLiveSide(out, this.positive, true)
      appendLiveSide(out, this.negative, false)
      return out
    }
    const now = this.snapshot()
    const neg = negAt(now)
    const bNeg = negAt(base)
    const shift = base[0] - this.schema
    out[2] -= base[2]
    appendDifference(out, now, POS, neg, now[3], base, POS, bNeg, base[3], shift, true)
    appendDifference(out, now, neg + 1, now.length, now[neg], base, bNeg + 1, base.length, base[bNeg], shift, false)
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
