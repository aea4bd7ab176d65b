/**
 * Lean metric families: counters, gauges and histograms whose series are plain objects that the
 * hot path updates with one property write (`series.value++`, `series.observe(v)`), with no
 * label hashing per observation. Callers resolve a series once (per route, per status) and keep
 * it. Each family also implements prom-client's metric interface (`name`, `help`, `type`,
 * `aggregator`, `get()`), so it lives in an ordinary prom-client `Registry` beside the app's own
 * metrics, and renders itself straight to exposition text for fast scrapes (`render`).
 */
import type { ClientMetricObject, ClientMetricValue } from './client'
import { FNM_ERR_LABELS } from './errors'
import type { ExpositionWriter } from './writer'
import { NativeBuckets, type NativeHistogramConfig } from './native'
import { encodeLabels, PB, writeTimestamp, type ProtoWriter } from './protobuf'

const NEWLINE = 10
const SPACE = 32
const OPEN = 123 // {
const CLOSE = 125 // }

/** The label value that replaces every label of a series created beyond a family's series cap. */
export const OVERFLOW_LABEL_VALUE = '__overflow__'

/** The three metric types this package defines. */
export type FamilyType = 'counter' | 'gauge' | 'histogram'

/** What every family is built from. */
export interface FamilyConfig {
  /** Full metric name, prefix included. */
  name: string
  help: string
  labelNames: readonly string[]
  /** Most series the family holds; a new label set beyond it folds into `__overflow__`. */
  maxSeries?: number
  /** Called once per label set folded into `__overflow__`. */
  onOverflow?: (family: MetricFamily<unknown>) => void
  /** Runs before each read of the family (scrape-time gauges). May be async. Errors are the caller's. */
  collect?: (family: MetricFamily<unknown>) => void | Promise<void>
  /**
   * Whether the series' `startMs` are true starts, served as start (created) timestamps: true
   * for the live families (lib/metrics.ts) and for the multiprocess aggregate's, which set each
   * series' `startMs` from what they sum (NaN when unknown: that series is served without one).
   */
  starts?: boolean
}

/** Escapes a label value for the exposition formats (backslash, double quote, newline). */
export function escapeLabelValue (value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value
}

/** Escapes HELP text (backslash and newline). */
export function escapeHelp (text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

/** Formats a sample value the way prom-client does (`+Inf`, `-Inf`, `NaN`). */
export function formatValue (value: number): string {
  if (Number.isFinite(value)) return String(value)
  if (Number.isNaN(value)) return 'NaN'
  return value > 0 ? '+Inf' : '-Inf'
}

/**
 * A number in the canonical form OpenMetrics asks for in `le` and `quantile` label values: Go's
 * shortest `%g` (exponent from 1e+06 up and below 1e-04, at least two exponent digits), with `.0`
 * added to an integer (`1.0`, `16.0`, `1.048576e+06`, `+Inf`). The same text client_golang and
 * the Python client write, so one bucket has one label value whichever client exposed it.
 */
export function formatCanonical (value: number): string {
  if (!Number.isFinite(value)) return formatValue(value)
  if (value === 0) return '0.0'
  const [mantissa, exponent] = value.toExponential().split('e')
  const e = Number(exponent)
  if (e < -4 || e >= 6) return `${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`
  const fixed = String(value)
  return fixed.includes('.') ? fixed : `${fixed}.0`
}

function labelText (labelNames: readonly string[], values: readonly string[]): string {
  let out = ''
  for (let i = 0; i < labelNames.length; i++) {
    if (i > 0) out += ','
    out += `${labelNames[i]}="${escapeLabelValue(values[i])}"`
  }
  return out
}

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

/** Appends an `Exemplar` message field. */
function writeExemplar (w: ProtoWriter, field: number, e: Exemplar): void {
  const at = w.begin(field)
  const label = w.begin(PB.exemplar.label)
  w.string(PB.label.name, 'trace_id')
  w.string(PB.label.value, e.traceId)
  w.end(label)
  if (e.spanId !== '') {
    const span = w.begin(PB.exemplar.label)
    w.string(PB.label.name, 'span_id')
    w.string(PB.label.value, e.spanId)
    w.end(span)
  }
  w.double(PB.exemplar.value, e.value)
  writeTimestamp(w, PB.exemplar.timestamp, e.timestampMs)
  w.end(at)
}

/** ` # {trace_id="...",span_id="..."} value timestamp` after an OpenMetrics bucket sample. */
function writeExemplarText (w: ExpositionWriter, e: Exemplar): void {
  w.text(` # {trace_id="${e.traceId}"${e.spanId !== '' ? `,span_id="${e.spanId}"` : ''}} ${formatValue(e.value)} ${(e.timestampMs / 1000).toFixed(3)}`)
}

/** A series with a start: its labels and `startMs` (NaN: unknown). */
export type StartedSeries = BaseSeries & { startMs: number }

/**
 * OpenMetrics `<name>_created{labels} <seconds>`: when the series began (its `startMs`); nothing
 * for a series whose start is unknown (NaN, in a multiprocess aggregate).
 */
export function writeCreated (w: ExpositionWriter, name: Buffer, s: StartedSeries): void {
  if (!Number.isFinite(s.startMs)) return
  w.bytes(name)
  if (s.labelText !== '') {
    w.byte(OPEN)
    w.bytes(s.labelBytes)
    w.byte(CLOSE)
  }
  w.byte(SPACE)
  w.text(formatSeconds(s.startMs))
  w.byte(NEWLINE)
}

/** Milliseconds since the epoch as OpenMetrics seconds (`1765123456.789`). */
export function formatSeconds (ms: number): string {
  return (ms / 1000).toFixed(3)
}

/**
 * A metric family: a name, a type, label names, and its series by label values.
 * @typeParam S the series class
 */
export abstract class MetricFamily<S> {
  readonly name: string
  readonly help: string
  abstract readonly type: FamilyType
  readonly labelNames: readonly string[]
  /** How prom-client's cluster aggregator combines this family across workers. */
  aggregator: 'sum' | 'max' | 'min' | 'average' | 'first' | 'omit' = 'sum'
  protected readonly series = new Map<string, S>()
  /** The same series in creation order, so rendering can proceed in slices. */
  private readonly list: S[] = []
  private readonly maxSeries: number
  private readonly onOverflow: ((family: MetricFamily<unknown>) => void) | undefined
  private overflowSeries: S | undefined
  readonly collect: ((family: MetricFamily<unknown>) => void | Promise<void>) | undefined
  /** Whether the exposition serves the series' start timestamps (`FamilyConfig.starts`). */
  readonly starts: boolean

  constructor (config: FamilyConfig) {
    this.starts = config.starts === true
    this.name = config.name
    this.help = config.help
    this.labelNames = Object.freeze([...config.labelNames])
    this.maxSeries = config.maxSeries ?? Infinity
    this.onOverflow = config.onOverflow
    this.collect = config.collect
  }

  protected abstract create (values: readonly string[]): S

  /**
   * The series for these label values, created on first use. Resolve it once and keep it:
   * this is the only place that builds a key.
   */
  child (...values: string[]): S {
    if (values.length !== this.labelNames.length) throw new FNM_ERR_LABELS(this.name, this.labelNames.length, values.length)
    const key = values.length === 1 ? values[0] : values.join('\u0000')
    let s = this.series.get(key)
    if (s === undefined) {
      if (this.series.size >= this.maxSeries) return this.overflow()
      s = this.create(values.map(String))
      this.series.set(key, s)
      this.list.push(s)
    }
    return s
  }

  private overflow (): S {
    if (this.onOverflow !== undefined) this.onOverflow(this as MetricFamily<unknown>)
    if (this.overflowSeries === undefined) {
      this.overflowSeries = this.create(this.labelNames.map(() => OVERFLOW_LABEL_VALUE))
    }
    return this.overflowSeries
  }

  /** Every series, the overflow series last. */
  * entries (): IterableIterator<S> {
    yield * this.list
    if (this.overflowSeries !== undefined) yield this.overflowSeries
  }

  /** The series at a position of `entries()` order (the overflow series last). */
  at (i: number): S {
    return i < this.list.length ? this.list[i] : this.overflowSeries as S
  }

  /** Number of series, the overflow series included. */
  get size (): number {
    return this.series.size + (this.overflowSeries === undefined ? 0 : 1)
  }

  /**
   * prom-client's `reset()`, called by `registry.resetMetrics()`: counters and histograms go back
   * to zero *in place*, so the series objects the hooks hold keep counting into the exposition
   * (prom-client's own metrics drop their series instead; ours are resolved once and kept).
   * Gauges keep their values: they state what is true now (requests in flight, versions, pool
   * use), and zeroing `http_requests_in_flight` would send it negative as those requests end.
   * Series stay listed, at zero.
   */
  reset (): void {
    for (const s of this.entries()) (s as { zero?: () => void }).zero?.()
    this.lastResetMs = Date.now()
  }

  /**
   * When `reset()` last ran (`registry.resetMetrics()` runs it on every metric of the registry,
   * so the exposition learns from it when the app's own series were reset too); -Infinity before.
   */
  lastResetMs = -Infinity

  /** Forgets every series (scrape-time gauges start each read from nothing). */
  clear (): void {
    this.series.clear()
    this.list.length = 0
    this.overflowSeries = undefined
  }

  /** Runs the scrape-time collector, if any. */
  async prepare (): Promise<void> {
    if (this.collect !== undefined) await this.collect(this as MetricFamily<unknown>)
  }

  /** prom-client's view of the family (used by `registry.getMetricsAsJSON()` and `registry.metrics()`). */
  async get (): Promise<ClientMetricObject> {
    await this.prepare()
    return { name: this.name, help: this.help, type: this.type as never, aggregator: this.aggregator, values: this.values() }
  }

  protected abstract values (): ClientMetricValue[]

  /**
   * Appends the samples (no HELP/TYPE lines) of the series in positions [from, to) of
   * `entries()` order as exposition text, so a large family can be rendered in slices.
   * `openMetrics`: bucket bounds in OpenMetrics' canonical number form (`le="1.0"`); `created`:
   * with the OpenMetrics `_created` sample of each counter and histogram series (when `starts`).
   */
  abstract renderSamples (w: ExpositionWriter, sampleName: string, from?: number, to?: number, openMetrics?: boolean, created?: boolean): void

  /** Appends the series in positions [from, to) as protobuf `Metric` messages (`MetricFamily.metric` fields). */
  abstract encodeSeries (w: ProtoWriter, from?: number, to?: number): void

  /**
   * Writes `Metric { label..., <field> { value } }` for each series with one value (counters and
   * gauges); counters with their `created_timestamp`.
   */
  protected encodeSimple (w: ProtoWriter, field: number, from: number, to: number): void {
    const end = Math.min(to, this.size)
    const counter = field === PB.metric.counter
    for (let i = from; i < end; i++) {
      const s = this.at(i) as unknown as CounterSeries
      const metric = w.begin(PB.family.metric)
      w.raw(s.protoLabels)
      const at = w.begin(field)
      w.double(PB.value, s.value)
      if (counter && this.starts && Number.isFinite(s.startMs)) writeTimestamp(w, PB.counterCreated, s.startMs)
      w.end(at)
      w.end(metric)
    }
  }

  private readonly nameBytes = new Map<string, Buffer>()
  /** `text` as bytes, cached (sample names and their fixed parts). */
  protected cachedBytes (text: string): Buffer {
    let b = this.nameBytes.get(text)
    if (b === undefined) {
      b = Buffer.from(text)
      this.nameBytes.set(text, b)
    }
    return b
  }

  /** Writes `name{labels} value\n` for a series with one value (counters and gauges). */
  protected writeSimple (w: ExpositionWriter, sampleName: string, from: number, to: number): void {
    const name = this.cachedBytes(sampleName)
    const end = Math.min(to, this.size)
    for (let i = from; i < end; i++) {
      const s = this.at(i) as unknown as CounterSeries
      w.bytes(name)
      if (s.labelText !== '') {
        w.byte(OPEN)
        w.bytes(s.labelBytes)
        w.byte(CLOSE)
      }
      w.byte(SPACE)
      w.number(s.value)
      w.byte(NEWLINE)
    }
  }
}

/** A counter family. Counter names end in `_total`. */
export class CounterFamily extends MetricFamily<CounterSeries> {
  readonly type = 'counter'
  protected create (values: readonly string[]): CounterSeries {
    return new CounterSeries(this.labelNames, values)
  }

  protected values (): ClientMetricValue[] {
    const out: ClientMetricValue[] = []
    for (const s of this.entries()) out.push({ labels: { ...s.labels }, value: s.value })
    return out
  }

  renderSamples (w: ExpositionWriter, sampleName: string, from = 0, to = Infinity, _openMetrics = false, created = false): void {
    if (created && this.starts) this.writeWithCreated(w, sampleName, from, to)
    else this.writeSimple(w, sampleName, from, to)
  }

  /** `name_total{labels} value` then `name_created{labels} start` for each series (OpenMetrics). */
  private writeWithCreated (w: ExpositionWriter, sampleName: string, from: number, to: number): void {
    const createdName = `${sampleName.endsWith('_total') ? sampleName.slice(0, -6) : sampleName}_created`
    const end = Math.min(to, this.size)
    for (let i = from; i < end; i++) {
      this.writeSimple(w, sampleName, i, i + 1)
      writeCreated(w, this.cachedBytes(createdName), this.at(i))
    }
  }

  encodeSeries (w: ProtoWriter, from = 0, to = Infinity): void {
    this.encodeSimple(w, PB.metric.counter, from, to)
  }
}

/** A gauge family. */
export class GaugeFamily extends MetricFamily<GaugeSeries> {
  readonly type = 'gauge'
  protected create (values: readonly string[]): GaugeSeries {
    return new GaugeSeries(this.labelNames, values)
  }

  protected values (): ClientMetricValue[] {
    const out: ClientMetricValue[] = []
    for (const s of this.entries()) out.push({ labels: { ...s.labels }, value: s.value })
    return out
  }

  renderSamples (w: ExpositionWriter, sampleName: string, from = 0, to = Infinity): void {
    this.writeSimple(w, sampleName, from, to)
  }

  encodeSeries (w: ProtoWriter, from = 0, to = Infinity): void {
    this.encodeSimple(w, PB.metric.gauge, from, to)
  }
}

/** A histogram family with fixed upper bounds (sorted, finite; `+Inf` is implicit). */
export class HistogramFamily extends MetricFamily<HistogramSeries> {
  readonly type = 'histogram'
  readonly upperBounds: Float64Array
  /** `le` values as the Prometheus text format (and prom-client) writes them: `1`, `+Inf`. */
  private readonly leText: readonly string[]
  /** `le` values in OpenMetrics' canonical form: `1.0`, `+Inf`. */
  private readonly leTextOpenMetrics: readonly string[]

  /** Native histogram settings; null when this family has classic buckets only. */
  readonly native: NativeHistogramConfig | null

  constructor (config: FamilyConfig & { buckets: readonly number[], native?: NativeHistogramConfig | null }) {
    super(config)
    this.native = config.native ?? null
    this.upperBounds = Float64Array.from(config.buckets)
    this.leText = [...config.buckets.map(formatValue), '+Inf']
    this.leTextOpenMetrics = [...config.buckets.map(formatCanonical), '+Inf']
  }

  private writeTotal (w: ExpositionWriter, name: Buffer, labels: Buffer | undefined, value: number): void {
    w.bytes(name)
    if (labels !== undefined) {
      w.byte(OPEN)
      w.bytes(labels)
      w.byte(CLOSE)
    }
    w.byte(SPACE)
    w.number(value)
    w.byte(NEWLINE)
  }

  protected create (values: readonly string[]): HistogramSeries {
    return new HistogramSeries(this.labelNames, values, this.upperBounds, this.native)
  }

  protected values (): ClientMetricValue[] {
    const out: ClientMetricValue[] = []
    for (const s of this.entries()) {
      let acc = 0
      for (let i = 0; i < this.leText.length; i++) {
        acc += s.counts[i]
        out.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: this.leText[i] }, value: acc })
      }
      out.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: s.sum })
      out.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: s.count })
    }
    return out
  }

  renderSamples (w: ExpositionWriter, sampleName: string, from = 0, to = Infinity, openMetrics = false, created = false): void {
    const withCreated = created && this.starts ? this.cachedBytes(`${sampleName}_created`) : undefined
    const bucket = this.cachedBytes(`${sampleName}_bucket{`)
    const sum = this.cachedBytes(`${sampleName}_sum`)
    const count = this.cachedBytes(`${sampleName}_count`)
    const leText = openMetrics ? this.leTextOpenMetrics : this.leText
    const leAfterLabels = leText.map((le) => this.cachedBytes(`,le="${le}"} `))
    const leAlone = leText.map((le) => this.cachedBytes(`le="${le}"} `))
    const end = Math.min(to, this.size)
    for (let j = from; j < end; j++) {
      const s = this.at(j)
      const hasLabels = s.labelText !== ''
      const labels = hasLabels ? s.labelBytes : undefined
      const le = hasLabels ? leAfterLabels : leAlone
      // Exemplars are OpenMetrics only: the Prometheus text format has no syntax for them.
      const exemplars = openMetrics ? s.exemplars : null
      let acc = 0
      for (let i = 0; i < le.length; i++) {
        acc += s.counts[i]
        w.bytes(bucket)
        if (labels !== undefined) w.bytes(labels)
        w.bytes(le[i])
        w.number(acc)
        const e = exemplars?.[i]
        if (e !== undefined) writeExemplarText(w, e)
        w.byte(NEWLINE)
      }
      this.writeTotal(w, sum, labels, s.sum)
      this.writeTotal(w, count, labels, s.count)
      if (withCreated !== undefined) writeCreated(w, withCreated, s)
    }
  }

  /**
   * Protobuf `Histogram`s: count, sum, the classic buckets (cumulative, without `+Inf` unless it
   * holds an exemplar, as client_golang) unless native buckets replace them (`classic: false`),
   * and the native fields when configured, with the classic buckets' exemplars beside them.
   */
  encodeSeries (w: ProtoWriter, from = 0, to = Infinity): void {
    const f = PB.histogram
    const classic = this.native === null || this.native.classic
    const bounds = this.upperBounds
    const end = Math.min(to, this.size)
    for (let j = from; j < end; j++) {
      const s = this.at(j)
      const metric = w.begin(PB.family.metric)
      w.raw(s.protoLabels)
      const h = w.begin(PB.metric.histogram)
      w.uint(f.count, s.count)
      w.double(f.sum, s.sum)
      if (this.starts && Number.isFinite(s.startMs)) writeTimestamp(w, f.created, s.startMs)
      const exemplars = s.exemplars
      if (classic) {
        let acc = 0
        for (let i = 0; i <= bounds.length; i++) {
          acc += s.counts[i]
          const e = exemplars?.[i]
          if (i === bounds.length && e === undefined) break
          const b = w.begin(f.bucket)
          w.uint(PB.bucket.cumulativeCount, acc)
          w.double(PB.bucket.upperBound, i < bounds.length ? bounds[i] : Infinity)
          if (e !== undefined) writeExemplar(w, PB.bucket.exemplar, e)
          w.end(b)
        }
      }
      if (s.native !== null) {
        s.native.encode(w)
        if (exemplars !== null) for (const e of exemplars) if (e !== undefined) writeExemplar(w, f.exemplars, e)
      }
      w.end(h)
      w.end(metric)
    }
  }

}

/**
 * Whether a registry entry is one of this package's families: an instance, or one from another
 * copy of the package (same shape), as two plugin instances may share one registry.
 */
export function isMetricFamily (m: unknown): m is MetricFamily<unknown> {
  return m instanceof MetricFamily || (typeof m === 'object' && m !== null &&
    typeof (m as MetricFamily<unknown>).renderSamples === 'function' && typeof (m as MetricFamily<unknown>).entries === 'function')
}
