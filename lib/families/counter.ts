/** The counter family. */
import { PB, type ProtoWriter } from '../protobuf'
import type { ExpositionWriter } from '../writer'
import { ScalarFamily } from './family'
import { CounterSeries } from './series'
import { writeCreated } from './text'

/** A counter family. Counter names end in `_total`. */
export class CounterFamily extends ScalarFamily<CounterSeries> {
  readonly type = 'counter'
  protected create (values: readonly string[]): CounterSeries {
    return new CounterSeries(this.labelNames, values)
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
