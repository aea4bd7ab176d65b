/**
 * A small encoder of Prometheus's `client_model` protobuf (`io/prometheus/client/metrics.proto`),
 * the exposition Prometheus asks for with `Accept: application/vnd.google.protobuf;
 * proto=io.prometheus.client.MetricFamily; encoding=delimited`: a stream of `MetricFamily`
 * messages, each preceded by its length as a varint.
 *
 * The schema is fixed, so this is a writer of the few wire types it uses (varint, 64-bit double,
 * length-delimited) rather than a general protobuf library: a nested message reserves one byte
 * for its length and moves its body when the length needs more (`begin` / `end`), so each message
 * is written once, straight into one growing buffer. Field numbers are `client_model`'s.
 */
import { GrowingBuffer } from './writer'

/** Field numbers of `client_model`'s messages (io/prometheus/client/metrics.proto). */
export const PB = Object.freeze({
  family: { name: 1, help: 2, type: 3, metric: 4 },
  type: { counter: 0, gauge: 1, summary: 2, untyped: 3, histogram: 4 },
  metric: { label: 1, gauge: 2, counter: 3, summary: 4, untyped: 5, timestampMs: 6, histogram: 7 },
  label: { name: 1, value: 2 },
  value: 1, // Gauge.value, Counter.value, Untyped.value
  counterExemplar: 2,
  /** `Counter.created_timestamp`. */
  counterCreated: 3,
  summary: { count: 1, sum: 2, quantile: 3, created: 4 },
  quantile: { quantile: 1, value: 2 },
  histogram: {
    count: 1,
    sum: 2,
    bucket: 3,
    schema: 5,
    zeroThreshold: 6,
    zeroCount: 7,
    negativeSpan: 9,
    negativeDelta: 10,
    positiveSpan: 12,
    positiveDelta: 13,
    created: 15,
    exemplars: 16
  },
  bucket: { cumulativeCount: 1, upperBound: 2, exemplar: 3 },
  span: { offset: 1, length: 2 },
  exemplar: { label: 1, value: 2, timestamp: 3 },
  timestamp: { seconds: 1, nanos: 2 }
})

const VARINT = 0
const FIXED64 = 1
const LENGTH = 2

const TWO_POW_32 = 2 ** 32

/** Bytes a varint of `v` (a non-negative safe integer) takes. */
export function varintSize (v: number): number {
  let n = 1
  while (v >= 128) {
    v = Math.floor(v / 128)
    n++
  }
  return n
}

/** ZigZag encoding of a signed safe integer (sint32 / sint64), without 32-bit truncation. */
export function zigzag (v: number): number {
  return v >= 0 ? v * 2 : -v * 2 - 1
}

/** Appends protobuf fields to one buffer that grows by doubling. */
export class ProtoWriter extends GrowingBuffer {
  /** Appends a varint (a non-negative safe integer). */
  varint (v: number): void {
    this.ensure(10)
    const buf = this.buf
    let p = this.pos
    if (v < TWO_POW_32 && v >= 0) {
      let u = v >>> 0
      while (u >= 128) {
        buf[p++] = (u & 127) | 128
        u >>>= 7
      }
      buf[p++] = u
    } else {
      let u = v
      while (u >= 128) {
        buf[p++] = (u % 128) | 128
        u = Math.floor(u / 128)
      }
      buf[p++] = u
    }
    this.pos = p
  }

  private tag (field: number, wireType: number): void {
    this.varint(field * 8 + wireType)
  }

  /** A `double` field. */
  double (field: number, v: number): void {
    this.tag(field, FIXED64)
    this.ensure(8)
    this.buf.writeDoubleLE(v, this.pos)
    this.pos += 8
  }

  /** A `uint32`/`uint64`/enum field (a non-negative safe integer). */
  uint (field: number, v: number): void {
    this.tag(field, VARINT)
    this.varint(v)
  }

  /** A `sint32`/`sint64` field. */
  sint (field: number, v: number): void {
    this.tag(field, VARINT)
    this.varint(zigzag(v))
  }

  /** A `string` field. */
  string (field: number, s: string): void {
    this.tag(field, LENGTH)
    const n = Buffer.byteLength(s)
    this.varint(n)
    this.ensure(n)
    this.pos += this.buf.write(s, this.pos, 'utf8')
  }

  /** Bytes already encoded as fields (a cached label set), copied as they are. */
  raw (b: Uint8Array): void {
    this.bytes(b)
  }

  /**
   * Starts a length-delimited field (a nested message or a packed list): writes its tag when
   * `field` is given (a top-level delimited message has none) and reserves one byte for the
   * length. Returns the position to give `end()`.
   */
  begin (field?: number): number {
    if (field !== undefined) this.tag(field, LENGTH)
    this.ensure(1)
    return this.pos++
  }

  /** Ends what `begin()` started: writes its length, moving the body when it needs more than one byte. */
  end (start: number): void {
    const len = this.pos - start - 1
    if (len < 128) {
      this.buf[start] = len
      return
    }
    const extra = varintSize(len) - 1
    this.ensure(extra)
    this.buf.copyWithin(start + 1 + extra, start + 1, this.pos)
    const end = this.pos + extra
    this.pos = start
    this.varint(len)
    this.pos = end
  }

}

/** `LabelPair` fields (`Metric.label` or `Exemplar.label`) for a label object, in its key order. */
export function encodeLabels (labels: Record<string, string | number | undefined>, field: number = PB.metric.label): Buffer {
  const w = new ProtoWriter(256)
  for (const name of Object.keys(labels)) {
    const value = labels[name]
    if (value === undefined) continue
    const at = w.begin(field)
    w.string(PB.label.name, name)
    w.string(PB.label.value, String(value))
    w.end(at)
  }
  return Buffer.from(w.toBuffer())
}

/** A `google.protobuf.Timestamp` message field for a time in milliseconds since the epoch. */
export function writeTimestamp (w: ProtoWriter, field: number, ms: number): void {
  const at = w.begin(field)
  const seconds = Math.floor(ms / 1000)
  if (seconds !== 0) w.uint(PB.timestamp.seconds, seconds)
  const nanos = Math.round((ms - seconds * 1000) * 1e6)
  if (nanos !== 0) w.uint(PB.timestamp.nanos, nanos)
  w.end(at)
}
