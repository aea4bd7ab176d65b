/** The gauge family. */
import { PB, type ProtoWriter } from '../protobuf'
import type { ExpositionWriter } from '../writer'
import { ScalarFamily } from './family'
import { GaugeSeries } from './series'

/** A gauge family. */
export class GaugeFamily extends ScalarFamily<GaugeSeries> {
  readonly type = 'gauge'
  protected create (values: readonly string[]): GaugeSeries {
    return new GaugeSeries(this.labelNames, values)
  }

  renderSamples (w: ExpositionWriter, sampleName: string, from = 0, to = Infinity): void {
    this.writeSimple(w, sampleName, from, to)
  }

  encodeSeries (w: ProtoWriter, from = 0, to = Infinity): void {
    this.encodeSimple(w, PB.metric.gauge, from, to)
  }
}
