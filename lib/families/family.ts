/**
 * What every family of the package is: a name, a type, label names and its series by label
 * values, created on first use and capped (`__overflow__`), with prom-client's metric interface
 * (`get()`, `reset()`) so it lives in the app's registry, and the parts of rendering that counters
 * and gauges share.
 */
import type { ClientMetricObject, ClientMetricValue } from '../client'
import { FNM_ERR_LABELS } from '../errors'
import { PB, writeTimestamp, type ProtoWriter } from '../protobuf'
import type { ExpositionWriter } from '../writer'
import type { CounterSeries, GaugeSeries } from './series'
import { writeSample } from './text'

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
}

/** A family whose series each hold one number: counters and gauges. */
export abstract class ScalarFamily<S extends CounterSeries | GaugeSeries> extends MetricFamily<S> {
  protected values (): ClientMetricValue[] {
    const out: ClientMetricValue[] = []
    for (const s of this.entries()) out.push({ labels: { ...s.labels }, value: s.value })
    return out
  }

  /**
   * Writes `Metric { label..., <field> { value } }` for each series with one value (counters and
   * gauges); counters with their `created_timestamp`.
   */
  protected encodeSimple (w: ProtoWriter, field: number, from: number, to: number): void {
    const end = Math.min(to, this.size)
    const counter = field === PB.metric.counter
    for (let i = from; i < end; i++) {
      const s = this.at(i)
      const metric = w.begin(PB.family.metric)
      w.raw(s.protoLabels)
      const at = w.begin(field)
      w.double(PB.value, s.value)
      if (counter && this.starts && Number.isFinite((s as CounterSeries).startMs)) writeTimestamp(w, PB.counterCreated, (s as CounterSeries).startMs)
      w.end(at)
      w.end(metric)
    }
  }

  /** Writes `name{labels} value\n` for each series in positions [from, to). */
  protected writeSimple (w: ExpositionWriter, sampleName: string, from: number, to: number): void {
    const name = this.cachedBytes(sampleName)
    const end = Math.min(to, this.size)
    for (let i = from; i < end; i++) {
      const s = this.at(i)
      writeSample(w, name, s, s.value)
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
