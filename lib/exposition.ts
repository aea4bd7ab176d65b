/**
 * Where metrics are exposed: content negotiation (Prometheus text or OpenMetrics) and rendering
 * of a prom-client Registry. The package's own families render straight from their series; any
 * other metric in the registry (prom-client's default metrics, the app's own) goes through its
 * `get()`. A collector that throws is counted and its family left out; the rest of the
 * exposition is served intact.
 */
import { monotonicMs } from './clock'
import type { MetricObjectWithValues, MetricValue, MetricValueWithName, Registry } from 'prom-client'
import { escapeHelp, escapeLabelValue, formatCanonical, formatValue, isMetricFamily } from './families'
import { ExpositionWriter } from './writer'

/** Content type of the Prometheus text format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
/** Content type of OpenMetrics 1.0.0. */
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8'

/** Series rendered between two checks of the time spent. */
export const RENDER_SLICE_SERIES = 250
/** Longest stretch of rendering before the event loop gets a turn, in milliseconds. */
export const RENDER_SLICE_MS = 10

const lastSize = new WeakMap<object, number>()

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** The two exposition formats. */
export type ExpositionFormat = 'prometheus' | 'openmetrics'

/**
 * Picks the format an `Accept` header asks for: OpenMetrics when it is acceptable with a quality
 * at least as high as the text format's (Prometheus sends both, OpenMetrics first), else text.
 */
export function negotiateFormat (accept: string | undefined): ExpositionFormat {
  if (accept === undefined || !accept.includes('openmetrics')) return 'prometheus'
  let om = -1
  let text = -1
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().split(';')
    let q = 1
    for (const p of params) {
      const [k, v] = p.trim().split('=')
      if (k === 'q') q = Number(v)
    }
    if (!Number.isFinite(q)) continue
    const t = type.trim().toLowerCase()
    if (t === 'application/openmetrics-text') om = Math.max(om, q)
    else if (t === 'text/plain' || t === '*/*' || t === 'text/*') text = Math.max(text, q)
  }
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

function renderForeign (w: ExpositionWriter, metric: MetricObjectWithValues<MetricValue<string>>, familyName: string, openMetrics: boolean, defaultLabels: Record<string, string> | null): void {
  for (const v of metric.values ?? []) {
    let sample = (v as MetricValueWithName<string>).metricName ?? familyName
    if (openMetrics && (metric.type as unknown as string) === 'counter' && !sample.endsWith('_total')) sample += '_total'
    let labels = defaultLabels === null ? v.labels : { ...defaultLabels, ...v.labels }
    if (openMetrics && labels !== undefined) labels = canonicalBounds(labels)
    const text = formatLabels(labels ?? {})
    w.text(`${sample}${text === '' ? '' : `{${text}}`} ${formatValue(v.value)}\n`)
  }
}

/**
 * Renders every metric of a registry in the given format.
 * @param onCollectError told about each metric whose collector threw (that metric is left out)
 */
export async function renderRegistry (registry: Registry, format: ExpositionFormat, onCollectError?: CollectErrorHandler): Promise<string> {
  return (await renderRegistryBuffer(registry, format, onCollectError)).toString('utf8')
}

/** `renderRegistry`, as UTF-8 bytes ready to send or compress. */
export async function renderRegistryBuffer (registry: Registry, format: ExpositionFormat, onCollectError?: CollectErrorHandler): Promise<Buffer> {
  const openMetrics = format === 'openmetrics'
  const rawDefaults = (registry as unknown as { _defaultLabels?: Record<string, string> })._defaultLabels
  const defaultLabels = rawDefaults !== undefined && Object.keys(rawDefaults).length > 0 ? rawDefaults : null
  const metrics = registry.getMetricsAsArray() as unknown[]
  // Collect everything first, concurrently, as prom-client does.
  const collected = await Promise.all(metrics.map(async (m) => {
    try {
      if (isMetricFamily(m) && defaultLabels === null) {
        await m.prepare()
        return m
      }
      return await (m as { get: () => Promise<MetricObjectWithValues<MetricValue<string>>> }).get()
    } catch (err) {
      onCollectError?.((m as { name?: string }).name ?? '(unnamed)', err)
      return null
    }
  }))
  // Start at the size of the previous scrape: a large exposition then needs no regrowth.
  const w = new ExpositionWriter(lastSize.get(registry))
  let sliceStart = monotonicMs()
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
        c.renderSamples(w, sampleName, from, from + RENDER_SLICE_SERIES, openMetrics)
        if (monotonicMs() - sliceStart > RENDER_SLICE_MS) {
          await yieldToEventLoop()
          sliceStart = monotonicMs()
        }
      }
    } else {
      renderForeign(w, c, familyName, openMetrics, defaultLabels)
    }
  }
  if (openMetrics) w.text('# EOF\n')
  lastSize.set(registry, Math.max(64 * 1024, Math.ceil(w.length * 1.1)))
  return w.toBuffer()
}
