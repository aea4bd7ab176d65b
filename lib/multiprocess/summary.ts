/**
 * An application's Summary across processes (pure): `_sum` and `_count` only, rendered like the
 * package's own families. Quantiles of several processes cannot be combined (prometheus_client's
 * multiprocess mode drops them too).
 */
import type { ClientMetricValue } from '../client'
import { BaseSeries, MetricFamily, writeCreated, writeSample, type FamilyType } from '../families'
import { PB, writeTimestamp, type ProtoWriter } from '../protobuf'
import type { ExpositionWriter } from '../writer'

/** One series of an application's Summary in multiprocess mode: `_sum` and `_count`. */
export class SummarySeries extends BaseSeries {
  sum = 0
  count = 0
  /** When the summed series began (lib/starts.ts, `sumStart`), NaN when unknown. */
  startMs = NaN
}

/**
 * An application's Summary summed over processes: `_sum` and `_count` only (quantiles cannot be
 * combined, as with prometheus_client's multiprocess mode).
 */
export class SummaryFamily extends MetricFamily<SummarySeries> {
  readonly type = 'summary' as unknown as FamilyType
  protected create (values: readonly string[]): SummarySeries {
    return new SummarySeries(this.labelNames, values)
  }

  protected values (): ClientMetricValue[] {
    const out: ClientMetricValue[] = []
    for (const s of this.entries()) {
      out.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: s.sum })
      out.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: s.count })
    }
    return out
  }

  renderSamples (w: ExpositionWriter, sampleName: string, from = 0, to = Infinity, _openMetrics = false, created = false): void {
    const withCreated = created && this.starts ? this.cachedBytes(`${sampleName}_created`) : undefined
    const sum = this.cachedBytes(`${sampleName}_sum`)
    const count = this.cachedBytes(`${sampleName}_count`)
    const end = Math.min(to, this.size)
    for (let i = from; i < end; i++) {
      const s = this.at(i)
      writeSample(w, sum, s, s.sum)
      writeSample(w, count, s, s.count)
      if (withCreated !== undefined) writeCreated(w, withCreated, s)
    }
  }

  encodeSeries (w: ProtoWriter, from = 0, to = Infinity): void {
    const end = Math.min(to, this.size)
    for (let i = from; i < end; i++) {
      const s = this.at(i)
      const metric = w.begin(PB.family.metric)
      w.raw(s.protoLabels)
      const at = w.begin(PB.metric.summary)
      w.uint(PB.summary.count, s.count)
      w.double(PB.summary.sum, s.sum)
      if (this.starts && Number.isFinite(s.startMs)) writeTimestamp(w, PB.summary.created, s.startMs)
      w.end(at)
      w.end(metric)
    }
  }
}
