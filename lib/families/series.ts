/**
 * The series of the package's families: plain objects the hot path updates with one property
 * write (`series.value++`, `series.observe(v)`), each with its labels pre-rendered for the
 * exposition formats.
 */
import { NativeBuckets, type NativeHistogramConfig } from '../native'
import { encodeLabels } from '../protobuf'
import { labelText } from './text'

/** Base of every series: its label values, as an object and as pre-rendered exposition text. */
export abstract class BaseSeries {
  /** Label values as an object (prom-client's shape). */
  readonly labels: Record<string, string>
  /** `name="value",...` ready for exposition, escaped. */
  readonly labelText: string
  private labelBuffer: Buffer | undefined

  /** `labelText` as UTF-8 bytes, made on first render and kept. */
  get labelBytes (): Buffer {
    if (this.labelBuffer === undefined) this.labelBuffer = Buffer.from(this.labelText)
    return this.labelBuffer
  }

  private protoBuffer: Buffer | undefined
  /** The labels as protobuf `Metric.label` fields, made on first protobuf scrape and kept. */
  get protoLabels (): Buffer {
    if (this.protoBuffer === undefined) this.protoBuffer = encodeLabels(this.labels)
    return this.protoBuffer
  }

  constructor (labelNames: readonly string[], values: readonly string[]) {
    const labels: Record<string, string> = {}
    for (let i = 0; i < labelNames.length; i++) labels[labelNames[i]] = values[i]
    this.labels = labels
    this.labelText = labelText(labelNames, values)
  }
}

/** One counter series. */
export class CounterSeries extends BaseSeries {
  value = 0
  /**
   * When the series began, in milliseconds since the epoch: its creation (on its first
   * observation, or at registration for the series exposed at 0) or its last reset. Set there,
   * never per observation. Served as the start (created) timestamp. In a multiprocess aggregate
   * (lib/multiprocess/aggregate.ts): the start of the sum, NaN when unknown (served without one).
   */
  startMs = Date.now()
  /** Sets the count back to 0 (prom-client's `reset()`); the series object stays in use. */
  zero (): void {
    this.value = 0
    this.startMs = Date.now()
  }
  /** Adds `n` (default 1). Negative amounts are ignored: counters never go down. */
  inc (n = 1): void {
    if (n > 0) this.value += n
  }
}

/** One gauge series. */
export class GaugeSeries extends BaseSeries {
  value = 0
  set (v: number): void { this.value = v }
  inc (n = 1): void { this.value += n }
  dec (n = 1): void { this.value -= n }
}

/**
 * An exemplar: an observation with the trace that made it (OpenMetrics and protobuf). The
 * label set (`trace_id`, `span_id`) stays within OpenMetrics' 128 characters: W3C ids are 32
 * and 16 hex digits.
 */
export interface Exemplar {
  traceId: string
  spanId: string
  value: number
  /** Milliseconds since the epoch. */
  timestampMs: number
}

/**
 * One histogram series. Bucket counts are kept non-cumulative and summed when read. With native
 * buckets configured (`lib/native.ts`) every observation is also counted there; with exemplars,
 * the latest exemplar of each classic bucket is kept (one slot per bucket, so at most
 * `upperBounds.length + 1` per series).
 */
export class HistogramSeries extends BaseSeries {
  readonly upperBounds: Float64Array
  /** counts[i] = observations in (upperBounds[i-1], upperBounds[i]]; the last slot is +Inf. */
  readonly counts: Float64Array
  sum = 0
  count = 0
  /** When the series began (as `CounterSeries.startMs`): its creation or its last reset; NaN in an aggregate: unknown. */
  startMs = Date.now()
  /** The native (exponential) buckets, null when native histograms are off. */
  readonly native: NativeBuckets | null
  /** The latest exemplar of each classic bucket; null until the first exemplar. */
  exemplars: Array<Exemplar | undefined> | null = null

  constructor (labelNames: readonly string[], values: readonly string[], upperBounds: Float64Array, native: NativeHistogramConfig | null = null) {
    super(labelNames, values)
    this.upperBounds = upperBounds
    this.counts = new Float64Array(upperBounds.length + 1)
    this.native = native === null ? null : new NativeBuckets(native)
  }

  /** Empties the buckets, sum and count (prom-client's `reset()`); the series object stays in use. */
  zero (): void {
    this.counts.fill(0)
    this.sum = 0
    this.count = 0
    this.startMs = Date.now()
    if (this.native !== null) this.native.reset()
    this.exemplars = null
  }

  private bucketOf (v: number): number {
    const bounds = this.upperBounds
    const n = bounds.length
    let i = 0
    // Observations are mostly small (fast requests, small bodies): a forward scan beats bisection here.
    while (i < n && v > bounds[i]) i++
    return i
  }

  /** Records one observation. */
  observe (v: number): void {
    this.counts[this.bucketOf(v)]++
    this.sum += v
    this.count++
    if (this.native !== null) this.native.observe(v)
  }

  /** Records one observation with the trace it belongs to, kept as its bucket's exemplar. */
  observeWithExemplar (v: number, traceId: string, spanId: string): void {
    this.observe(v)
    const i = this.bucketOf(v)
    if (this.exemplars === null) this.exemplars = new Array(this.counts.length).fill(undefined)
    const e = this.exemplars[i]
    if (e === undefined) {
      this.exemplars[i] = { traceId, spanId, value: v, timestampMs: Date.now() }
    } else {
      e.traceId = traceId
      e.spanId = spanId
      e.value = v
      e.timestampMs = Date.now()
    }
  }
}
