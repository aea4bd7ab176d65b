/** The histogram family: classic buckets, and native (exponential) buckets and exemplars when configured. */
import type { ClientMetricValue } from '../client'
import type { NativeHistogramConfig } from '../native'
import { PB, writeTimestamp, type ProtoWriter } from '../protobuf'
import type { ExpositionWriter } from '../writer'
import { MetricFamily, type FamilyConfig } from './family'
import { HistogramSeries, type Exemplar } from './series'
import { formatCanonical, formatValue, NEWLINE, writeCreated, writeExemplarText, writeSample } from './text'

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
      writeSample(w, sum, s, s.sum)
      writeSample(w, count, s, s.count)
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
