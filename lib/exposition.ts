/**
 * Where metrics are exposed: content negotiation (Prometheus text or OpenMetrics) and rendering
 * of a prom-client Registry. The package's own families render straight from their series; any
 * other metric in the registry (prom-client's default metrics, the app's own) goes through its
 * `get()`. A collector that throws is counted and its family left out; the rest of the
 * exposition is served intact.
 */
import { monotonicMs } from './clock'
import type { ClientMetricObject, ClientMetricValue, PrometheusRegistry as Registry } from './client'
import { escapeHelp, escapeLabelValue, formatCanonical, formatSeconds, formatValue, isMetricFamily, type CounterSeries, type MetricFamily } from './families'
import { ExpositionWriter } from './writer'
import { encodeLabels, PB, ProtoWriter, writeTimestamp } from './protobuf'
import { nextStarts, seriesKey, type MetricStarts } from './starts'

/** Content type of the Prometheus text format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
/** Content type of OpenMetrics 1.0.0. */
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8'

/**
 * Content type of Prometheus's protobuf exposition: length-delimited `MetricFamily` messages of
 * `client_model` (what Prometheus asks for first when its native histograms are on).
 */
export const PROTOBUF_CONTENT_TYPE = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited'

/** Series rendered between two checks of the time spent. */
export const RENDER_SLICE_SERIES = 250
/** Longest stretch of rendering before the event loop gets a turn, in milliseconds. */
export const RENDER_SLICE_MS = 10

const lastSize = new WeakMap<object, number>()
const lastProtoSize = new WeakMap<object, number>()

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/**
 * When a scrape gives the event loop a turn: only after a full slice of series, never for time
 * alone, so a small exposition (fewer series than one slice) is always rendered in one go, a
 * consistent snapshot, even when a loaded machine stretches its rendering past RENDER_SLICE_MS
 * (the invariant between the HTTP families holds in it).
 */
class Slices {
  private start = monotonicMs()
  private since = 0

  /**
   * Counts `n` series rendered; true when a full slice ran long and the event loop should get a
   * turn (`turn()`). Synchronous otherwise: not even a microtask runs between two slices.
   */
  due (n: number): boolean {
    this.since += n
    return this.since >= RENDER_SLICE_SERIES && monotonicMs() - this.start > RENDER_SLICE_MS
  }

  /** Gives the event loop a turn and starts a new slice. */
  async turn (): Promise<void> {
    await yieldToEventLoop()
    this.start = monotonicMs()
    this.since = 0
  }
}

/** The exposition formats: Prometheus text, OpenMetrics text, and Prometheus protobuf. */
export type ExpositionFormat = 'prometheus' | 'openmetrics' | 'protobuf'

/** The content type of a format. */
export function contentType (format: ExpositionFormat): string {
  return format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : format === 'protobuf' ? PROTOBUF_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE
}

/**
 * Picks the format an `Accept` header asks for, by quality: protobuf (only the delimited
 * `io.prometheus.client.MetricFamily` kind), then OpenMetrics, when acceptable with a quality at
 * least as high as the text format's (Prometheus sends them in that order), else text.
 */
export function negotiateFormat (accept: string | undefined): ExpositionFormat {
  if (accept === undefined || (!accept.includes('openmetrics') && !accept.includes('vnd.google.protobuf'))) return 'prometheus'
  let pb = -1
  let om = -1
  let text = -1
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().split(';')
    let q = 1
    let proto = ''
    let encoding = ''
    for (const p of params) {
      const [k, v = ''] = p.trim().split('=')
      const key = k.trim().toLowerCase()
      if (key === 'q') q = Number(v)
      else if (key === 'proto') proto = v.trim()
      else if (key === 'encoding') encoding = v.trim().toLowerCase()
    }
    if (!Number.isFinite(q)) continue
    const t = type.trim().toLowerCase()
    if (t === 'application/vnd.google.protobuf') {
      if (proto === 'io.prometheus.client.MetricFamily' && encoding === 'delimited') pb = Math.max(pb, q)
    } else if (t === 'application/openmetrics-text') om = Math.max(om, q)
    else if (t === 'text/plain' || t === '*/*' || t === 'text/*') text = Math.max(text, q)
  }
  if (pb > 0 && pb >= om && pb >= text) return 'protobuf'
  return om > 0 && om >= text ? 'openmetrics' : 'prometheus'
}

/** Called when a metric's collector throws during a scrape. */
export type CollectErrorHandler = (metricName: string, err: unknown) => void

function formatLabels (labels: Record<string, string | number | undefined>): string {
  let out = ''
  for (const key of Object.keys(labels)) {
    const v = labels[key]
    if (v === undefined) continue
    out += `${out === '' ? '' : ','}${key}="${escapeLabelValue(String(v))}"`
  }
  return out
}

/** `le` and `quantile` in OpenMetrics' canonical number form (prom-client writes `le="1"`). */
function canonicalBounds (labels: Record<string, string | number | undefined>): Record<string, string | number | undefined> {
  if (!('le' in labels) && !('quantile' in labels)) return labels
  const out = { ...labels }
  for (const key of ['le', 'quantile']) {
    const v = out[key]
    if (v === undefined) continue
    const n = Number(v)
    if (v !== '' && !Number.isNaN(n)) out[key] = formatCanonical(n)
  }
  return out
}

function renderForeign (w: ExpositionWriter, metric: ClientMetricObject, familyName: string, openMetrics: boolean, defaultLabels: Record<string, string> | null, created: boolean): void {
  const type = metric.type as unknown as string
  // OpenMetrics `_created`, when asked: after a counter's sample, after a histogram's or summary's `_count`.
  const starts = openMetrics && created ? startsOf.get(metric) : undefined
  for (const v of metric.values ?? []) {
    let sample = v.metricName ?? familyName
    if (openMetrics && type === 'counter' && !sample.endsWith('_total')) sample += '_total'
    let labels = defaultLabels === null ? v.labels : { ...defaultLabels, ...v.labels }
    if (openMetrics && labels !== undefined) labels = canonicalBounds(labels)
    const text = formatLabels(labels ?? {})
    const braces = text === '' ? '' : `{${text}}`
    w.text(`${sample}${braces} ${formatValue(v.value)}\n`)
    if (starts === undefined || (type !== 'counter' && !sample.endsWith('_count'))) continue
    const start = starts.get(seriesKey(v.labels, ''))
    if (start !== undefined) w.text(`${familyName}_created${braces} ${formatSeconds(start)}\n`)
  }
}

/** Rendering options. */
export interface RenderOptions {
  /** OpenMetrics `_created` samples (the `createdTimestamps` option). */
  created?: boolean
}

/**
 * The start of each counter, histogram and summary series of an application metric's last
 * collect, by `seriesKey` (lib/starts.ts); a series without a known start is absent.
 */
const startsOf = new WeakMap<ClientMetricObject, ReadonlyMap<string, number>>()
/** What the start tracking keeps between collects, per registry and metric object. */
const tracked = new WeakMap<object, WeakMap<object, MetricStarts>>()
/** The metric objects whose starts were given (`setStarts`): a render does not track them itself. */
const given = new WeakSet<ClientMetricObject>()

/**
 * Gives an application metric's collected values their starts (by `seriesKey`), served as
 * `created_timestamp` / `_created`: for a metric object rebuilt elsewhere, whose `get()` returns
 * this same object (the multiprocess store's aggregate: a registry made for one scrape, where a
 * start tracked by the render itself would be that scrape's). A series absent from `starts` is
 * served without one.
 */
export function setStarts (metric: ClientMetricObject, starts: ReadonlyMap<string, number>): void {
  startsOf.set(metric, starts)
  given.add(metric)
}

/**
 * When `registry.resetMetrics()` last ran: the registry resets every metric, the package's own
 * families among them, so the latest reset of all of them is the latest registry-wide reset.
 */
export function registryResetMs (metrics: unknown[]): number {
  let min = Infinity
  for (const m of metrics) if (isMetricFamily(m)) min = Math.min(min, m.lastResetMs)
  return min === Infinity ? -Infinity : min
}

/**
 * Updates the starts of an application metric (`m`, the registry's object) after a collect that
 * began at `collectedMs`, and returns them by `seriesKey` (series without a known start absent).
 * The multiprocess store calls it on what it reads of the app's metrics, to write the starts
 * into the process's file.
 */
export function trackStarts (registry: object, m: object, metric: ClientMetricObject, collectedMs: number, resetMs: number): ReadonlyMap<string, number> {
  const type = metric.type as unknown as string
  if (type !== 'counter' && type !== 'histogram' && type !== 'summary') return new Map()
  const totals = new Map<string, number>()
  for (const v of metric.values ?? []) {
    if (type === 'counter') totals.set(seriesKey(v.labels, ''), v.value)
    else if ((v.metricName ?? '').endsWith('_count')) totals.set(seriesKey(v.labels, ''), v.value)
  }
  let perMetric = tracked.get(registry)
  if (perMetric === undefined) {
    perMetric = new WeakMap()
    tracked.set(registry, perMetric)
  }
  const state = nextStarts(perMetric.get(m), totals, collectedMs, resetMs)
  perMetric.set(m, state)
  const starts = new Map<string, number>()
  for (const [key, s] of state.series) if (s.start !== undefined) starts.set(key, s.start)
  startsOf.set(metric, starts)
  return starts
}

/**
 * A first look at the application's metrics, when the app is ready: the series present then have
 * no known start, but every series that appears later began after this look (lib/starts.ts), and
 * not only after the first scrape. Metrics with a `collect` function are left to the first scrape
 * (running the app's collectors at start-up is not ours to do); the others are only read.
 */
export async function baselineStarts (registry: Registry, onCollectError?: CollectErrorHandler): Promise<void> {
  const metrics = registry.getMetricsAsArray() as unknown[]
  const resetMs = registryResetMs(metrics)
  for (const m of metrics) {
    if (isMetricFamily(m) || typeof (m as { collect?: unknown }).collect === 'function') continue
    try {
      const collectedMs = Date.now()
      const metric = await (m as { get: () => Promise<ClientMetricObject> }).get()
      if (metric !== null && typeof metric === 'object') trackStarts(registry, m as object, metric, collectedMs, resetMs)
    } catch (err) {
      onCollectError?.((m as { name?: string }).name ?? '(unnamed)', err)
    }
  }
}

/** The package's own family rendered from its `get()` values (default labels): its exact starts. */
function familyStarts (family: MetricFamily<unknown>, metric: ClientMetricObject): void {
  if (!family.starts || family.type === 'gauge') return
  const starts = new Map<string, number>()
  for (const s of family.entries()) {
    const start = (s as CounterSeries).startMs
    // NaN in a multiprocess aggregate: unknown, served without one.
    if (Number.isFinite(start)) starts.set(seriesKey((s as CounterSeries).labels, ''), start)
  }
  startsOf.set(metric, starts)
}

/**
 * Renders every metric of a registry in the given format.
 * @param onCollectError told about each metric whose collector threw (that metric is left out)
 */
export async function renderRegistry (registry: Registry, format: ExpositionFormat, onCollectError?: CollectErrorHandler, options?: RenderOptions): Promise<string> {
  return (await renderRegistryBuffer(registry, format, onCollectError, options)).toString('utf8')
}

type Collected = MetricFamily<unknown> | ClientMetricObject | null

/**
 * Collects every metric of a registry, concurrently as prom-client does: the package's own
 * families ready to render themselves, any other metric (or every one, when the registry has
 * default labels) as its `get()` values; null for a metric whose collector threw.
 */
async function collectRegistry (registry: Registry, defaultLabels: Record<string, string> | null, onCollectError?: CollectErrorHandler): Promise<Collected[]> {
  const metrics = registry.getMetricsAsArray() as unknown[]
  const resetMs = registryResetMs(metrics)
  return await Promise.all(metrics.map(async (m) => {
    try {
      if (isMetricFamily(m) && defaultLabels === null) {
        await m.prepare()
        return m
      }
      const collectedMs = Date.now()
      const metric = await (m as { get: () => Promise<ClientMetricObject> }).get()
      if (isMetricFamily(m)) familyStarts(m, metric)
      else if (metric !== null && typeof metric === 'object' && !given.has(metric)) trackStarts(registry, m as object, metric, collectedMs, resetMs)
      return metric
    } catch (err) {
      onCollectError?.((m as { name?: string }).name ?? '(unnamed)', err)
      return null
    }
  }))
}

function registryDefaultLabels (registry: Registry): Record<string, string> | null {
  const rawDefaults = (registry as unknown as { _defaultLabels?: Record<string, string> })._defaultLabels
  return rawDefaults !== undefined && Object.keys(rawDefaults).length > 0 ? rawDefaults : null
}

/** `renderRegistry`, as bytes ready to send or compress (UTF-8 text, or protobuf). */
export async function renderRegistryBuffer (registry: Registry, format: ExpositionFormat, onCollectError?: CollectErrorHandler, options?: RenderOptions): Promise<Buffer> {
  if (format === 'protobuf') return await renderProtobuf(registry, onCollectError)
  const openMetrics = format === 'openmetrics'
  const created = openMetrics && options?.created === true
  const defaultLabels = registryDefaultLabels(registry)
  const collected = await collectRegistry(registry, defaultLabels, onCollectError)
  // Start at the size of the previous scrape: a large exposition then needs no regrowth.
  const w = new ExpositionWriter(lastSize.get(registry))
  const slices = new Slices()
  for (const c of collected) {
    if (c === null) continue
    const type = c.type as string
    const name = c.name
    const familyName = openMetrics && type === 'counter' && name.endsWith('_total') ? name.slice(0, -6) : name
    w.text(`# HELP ${familyName} ${escapeHelp(c.help)}\n# TYPE ${familyName} ${type}\n`)
    if (isMetricFamily(c)) {
      const sampleName = openMetrics && type === 'counter' ? `${familyName}_total` : name
      // Large families render in slices, giving the event loop a turn whenever a slice ran long.
      for (let from = 0; from < c.size; from += RENDER_SLICE_SERIES) {
        c.renderSamples(w, sampleName, from, from + RENDER_SLICE_SERIES, openMetrics, created)
        if (slices.due(Math.min(RENDER_SLICE_SERIES, c.size - from))) await slices.turn()
      }
    } else {
      renderForeign(w, c, familyName, openMetrics, defaultLabels, created)
    }
  }
  if (openMetrics) w.text('# EOF\n')
  lastSize.set(registry, Math.max(64 * 1024, Math.ceil(w.length * 1.1)))
  return w.toBuffer()
}

const PROTO_TYPES: Record<string, number> = { counter: PB.type.counter, gauge: PB.type.gauge, summary: PB.type.summary, histogram: PB.type.histogram }

/** The labels of a sample without one label (`le`, `quantile`), and a key for its series. */
function seriesOf (labels: Record<string, string | number | undefined>, without: string): { key: string, labels: Record<string, string | number | undefined> } {
  const rest: Record<string, string | number | undefined> = {}
  let key = ''
  for (const k of Object.keys(labels)) {
    if (k === without || labels[k] === undefined) continue
    rest[k] = labels[k]
    key += `${k}\u0000${String(labels[k])}\u0001`
  }
  return { key, labels: rest }
}

interface ForeignSeries {
  labels: Record<string, string | number | undefined>
  /** Bucket bounds and cumulative counts, or quantiles and values. */
  points: Array<[number, number]>
  sum: number
  count: number
  /** When the series began, if known (lib/starts.ts). */
  start: number | undefined
}

/**
 * Encodes a metric known only by its prom-client `get()` values as `Metric` messages: counters,
 * gauges and untyped one per sample; histograms and summaries regrouped from their `_bucket`
 * (`le`) or quantile samples, `_sum` and `_count` into one message per label set.
 */
function encodeForeign (w: ProtoWriter, metric: ClientMetricObject, type: string, defaultLabels: Record<string, string> | null): void {
  const values = metric.values ?? []
  const labelsOf = (v: ClientMetricValue): Record<string, string | number | undefined> => (defaultLabels === null ? v.labels : { ...defaultLabels, ...v.labels }) ?? {}
  const starts = startsOf.get(metric)
  if (type !== 'histogram' && type !== 'summary') {
    const field = type === 'counter' ? PB.metric.counter : type === 'gauge' ? PB.metric.gauge : PB.metric.untyped
    for (const v of values) {
      const m = w.begin(PB.family.metric)
      w.raw(encodeLabels(labelsOf(v)))
      const at = w.begin(field)
      w.double(PB.value, v.value)
      const start = type === 'counter' ? starts?.get(seriesKey(v.labels, '')) : undefined
      if (start !== undefined) writeTimestamp(w, PB.counterCreated, start)
      w.end(at)
      w.end(m)
    }
    return
  }
  const pointLabel = type === 'histogram' ? 'le' : 'quantile'
  const series = new Map<string, ForeignSeries>()
  for (const v of values) {
    const { key, labels } = seriesOf(labelsOf(v), pointLabel)
    let s = series.get(key)
    if (s === undefined) {
      s = { labels, points: [], sum: 0, count: 0, start: starts?.get(seriesKey(v.labels, pointLabel)) }
      series.set(key, s)
    }
    const sample = v.metricName ?? metric.name
    if (sample.endsWith('_sum')) s.sum = v.value
    else if (sample.endsWith('_count')) s.count = v.value
    else {
      const raw = (v.labels as Record<string, string | number | undefined> | undefined)?.[pointLabel]
      const bound = raw === '+Inf' ? Infinity : Number(raw)
      if (raw !== undefined && !Number.isNaN(bound)) s.points.push([bound, v.value])
    }
  }
  for (const s of series.values()) {
    const m = w.begin(PB.family.metric)
    w.raw(encodeLabels(s.labels))
    if (type === 'histogram') {
      const h = w.begin(PB.metric.histogram)
      w.uint(PB.histogram.count, s.count)
      w.double(PB.histogram.sum, s.sum)
      if (s.start !== undefined) writeTimestamp(w, PB.histogram.created, s.start)
      // The +Inf bucket is implied by the count (client_golang leaves it out too).
      for (const [bound, count] of s.points) {
        if (bound === Infinity) continue
        const b = w.begin(PB.histogram.bucket)
        w.uint(PB.bucket.cumulativeCount, count)
        w.double(PB.bucket.upperBound, bound)
        w.end(b)
      }
      w.end(h)
    } else {
      const sm = w.begin(PB.metric.summary)
      w.uint(PB.summary.count, s.count)
      w.double(PB.summary.sum, s.sum)
      if (s.start !== undefined) writeTimestamp(w, PB.summary.created, s.start)
      for (const [q, value] of s.points) {
        const at = w.begin(PB.summary.quantile)
        w.double(PB.quantile.quantile, q)
        w.double(PB.quantile.value, value)
        w.end(at)
      }
      w.end(sm)
    }
    w.end(m)
  }
}

/**
 * Renders every metric of a registry as Prometheus's protobuf exposition: one length-delimited
 * `MetricFamily` per metric, the package's own families straight from their series (in slices,
 * as the text formats), the others from their `get()` values.
 */
async function renderProtobuf (registry: Registry, onCollectError?: CollectErrorHandler): Promise<Buffer> {
  const defaultLabels = registryDefaultLabels(registry)
  const collected = await collectRegistry(registry, defaultLabels, onCollectError)
  const w = new ProtoWriter(lastProtoSize.get(registry))
  const slices = new Slices()
  for (const c of collected) {
    if (c === null) continue
    const type = c.type as string
    const family = w.begin()
    w.string(PB.family.name, c.name)
    w.string(PB.family.help, c.help)
    w.uint(PB.family.type, PROTO_TYPES[type] ?? PB.type.untyped)
    if (isMetricFamily(c)) {
      for (let from = 0; from < c.size; from += RENDER_SLICE_SERIES) {
        c.encodeSeries(w, from, from + RENDER_SLICE_SERIES)
        if (slices.due(Math.min(RENDER_SLICE_SERIES, c.size - from))) await slices.turn()
      }
    } else {
      encodeForeign(w, c, type, defaultLabels)
    }
    w.end(family)
  }
  lastProtoSize.set(registry, Math.max(64 * 1024, Math.ceil(w.length * 1.1)))
  return w.toBuffer()
}
