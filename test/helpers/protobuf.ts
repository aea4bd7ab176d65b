/**
 * Test helpers: read the protobuf exposition with an independent decoder, protobufjs, loading a
 * vendored copy of Prometheus's client_model `metrics.proto` (test/fixtures/client_model), and
 * turn it into the samples the text format would show, for exact comparison.
 */
import { join } from 'node:path'
import protobuf from 'protobufjs'

/** What Prometheus 2.42 sends when its native histograms are on. */
export const PROMETHEUS_PROTOBUF_ACCEPT = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'

const root = protobuf.loadSync(join(__dirname, '..', 'fixtures', 'client_model', 'metrics.proto'))
const MetricFamily = root.lookupType('io.prometheus.client.MetricFamily')

/** A decoded MetricFamily, as plain objects (numbers for 64-bit fields, enum names as strings). */
export type DecodedFamily = Record<string, any>

/** Decodes length-delimited MetricFamily messages. */
export function decodeDelimited (body: Buffer): DecodedFamily[] {
  const reader = protobuf.Reader.create(body)
  const out: DecodedFamily[] = []
  while (reader.pos < reader.len) {
    const message = MetricFamily.decodeDelimited(reader)
    out.push(MetricFamily.toObject(message, { longs: Number, enums: String, defaults: false, arrays: true }))
  }
  return out
}

function labelKey (labels: Array<{ name: string, value: string }>): string {
  return [...labels].sort((a, b) => a.name < b.name ? -1 : 1).map((l) => `${l.name}="${l.value}"`).join(',')
}

function sample (name: string, labels: Array<{ name: string, value: string }>, extra?: { name: string, value: string }): string {
  const all = extra === undefined ? labels : [...labels, extra]
  return all.length === 0 ? name : `${name}{${labelKey(all)}}`
}

function bound (v: number): string {
  return Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : '-Inf'
}

/**
 * The samples the Prometheus text format would show for decoded families, labels sorted:
 * counters and gauges one each, classic histograms their buckets (`+Inf` = the count), sum and
 * count, summaries their quantiles, sum and count.
 */
export function protobufSamples (families: DecodedFamily[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const f of families) {
    for (const m of f.metric ?? []) {
      const labels = (m.label ?? []).map((l: any) => ({ name: l.name, value: l.value ?? '' }))
      if (f.type === 'COUNTER' || f.type === undefined) out.set(sample(f.name, labels), m.counter?.value ?? 0)
      else if (f.type === 'GAUGE') out.set(sample(f.name, labels), m.gauge?.value ?? 0)
      else if (f.type === 'UNTYPED') out.set(sample(f.name, labels), m.untyped?.value ?? 0)
      else if (f.type === 'HISTOGRAM') {
        const h = m.histogram
        for (const b of h.bucket ?? []) out.set(sample(`${f.name}_bucket`, labels, { name: 'le', value: bound(b.upperBound) }), b.cumulativeCount ?? 0)
        out.set(sample(`${f.name}_bucket`, labels, { name: 'le', value: '+Inf' }), h.sampleCount ?? 0)
        out.set(sample(`${f.name}_sum`, labels), h.sampleSum ?? 0)
        out.set(sample(`${f.name}_count`, labels), h.sampleCount ?? 0)
      } else if (f.type === 'SUMMARY') {
        const s = m.summary
        for (const q of s.quantile ?? []) out.set(sample(f.name, labels, { name: 'quantile', value: String(q.quantile ?? 0) }), q.value ?? 0)
        out.set(sample(`${f.name}_sum`, labels), s.sampleSum ?? 0)
        out.set(sample(`${f.name}_count`, labels), s.sampleCount ?? 0)
      }
    }
  }
  return out
}

/** The samples of a Prometheus text exposition, labels sorted and unescaped. */
export function textSamples (body: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    const series = line.slice(0, i)
    const brace = series.indexOf('{')
    if (brace < 0) {
      out.set(series, Number(line.slice(i + 1)))
      continue
    }
    const labels = [...series.slice(brace + 1, -1).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => ({ name: m[1], value: m[2].replace(/\\(.)/g, (_, c: string) => c === 'n' ? '\n' : c) }))
    out.set(sample(series.slice(0, brace), labels), Number(line.slice(i + 1)))
  }
  return out
}

/** A native histogram's buckets as `key -> count`, from its spans and deltas. */
export function nativeBuckets (spans: Array<{ offset?: number, length?: number }> | undefined, deltas: number[] | undefined): Map<number, number> {
  const out = new Map<number, number>()
  let key = 0
  let count = 0
  let d = 0
  let first = true
  for (const span of spans ?? []) {
    key = first ? (span.offset ?? 0) : key + (span.offset ?? 0)
    first = false
    for (let i = 0; i < (span.length ?? 0); i++) {
      count += (deltas ?? [])[d++]
      if (count !== 0) out.set(key, count)
      key++
    }
  }
  return out
}

/** The native part of a decoded histogram. */
export interface NativeState { schema: number, zeroThreshold: number, zeroCount: number, buckets: Map<number, number> }

/** The native part of a decoded `Histogram` (positive buckets; the durations have no negative ones). */
export function nativeOf (h: any): NativeState {
  return { schema: h.schema ?? 0, zeroThreshold: h.zeroThreshold ?? 0, zeroCount: h.zeroCount ?? 0, buckets: nativeBuckets(h.positiveSpan, h.positiveDelta) }
}

/**
 * Why Prometheus would not read `after` as a continuation of `before` (a counter reset): the
 * schema got finer, the zero threshold narrower, or a bucket of `before`, reduced to the later
 * schema (and into the zero bucket below the later threshold), is larger than after. Empty when
 * it continues.
 */
export function continues (before: NativeState, after: NativeState): string[] {
  const problems: string[] = []
  if (after.schema > before.schema) problems.push(`schema ${before.schema} -> ${after.schema}`)
  if (after.zeroThreshold < before.zeroThreshold) problems.push(`zero threshold ${before.zeroThreshold} -> ${after.zeroThreshold}`)
  const reduced = new Map<number, number>()
  let zero = before.zeroCount
  for (const [k0, c] of before.buckets) {
    let k = k0
    for (let s = after.schema; s < before.schema; s++) k = (k + 1) >> 1
    if (2 ** (k / 2 ** after.schema) <= after.zeroThreshold) zero += c
    else reduced.set(k, (reduced.get(k) ?? 0) + c)
  }
  if (after.zeroCount < zero) problems.push(`zero count ${zero} -> ${after.zeroCount}`)
  for (const [k, c] of reduced) if ((after.buckets.get(k) ?? 0) < c) problems.push(`bucket ${k}: ${c} -> ${after.buckets.get(k) ?? 0}`)
  return problems
}
