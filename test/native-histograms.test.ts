/**
 * Native histograms (lib/native.ts): bucket keys against the definition Prometheus gives
 * (bucket k of schema s holds (2^((k-1)/2^s), 2^(k/2^s)]), the schema picked from a bucket
 * factor as client_golang picks it, resolution reduction, merging, the memory bound, and the
 * plugin's protobuf exposition decoded by protobufjs. Randomized parts print their seed;
 * FNM_NATIVE_SEED replays one.
 */
import t from 'tap'
import Fastify from 'fastify'
import netboxMetrics from '../lib/index'
import { bucketKey, NativeBuckets, relativeError, schemaForFactor, type NativeHistogramConfig } from '../lib/native'
import { HistogramFamily } from '../lib/families'
import { ProtoWriter } from '../lib/protobuf'
import { resolveOptions } from '../lib/options'
import { decodeDelimited, nativeBuckets, PROMETHEUS_PROTOBUF_ACCEPT } from './helpers/protobuf'

const seed = Number(process.env.FNM_NATIVE_SEED ?? Math.floor(Math.random() * 2 ** 31))
t.comment(`seed ${seed} (replay with FNM_NATIVE_SEED=${seed})`)
function rng (s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0
    let x = Math.imul(s ^ (s >>> 15), 1 | s)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
const random = rng(seed)

/** The key by the definition, with logarithms (fine away from boundaries). */
function referenceKey (v: number, schema: number): number {
  return Math.ceil(Math.log2(v) * 2 ** schema - 1e-9)
}

function config (o: Partial<NativeHistogramConfig> = {}): NativeHistogramConfig {
  return { bucketFactor: 1.1, schema: 3, maxBuckets: 160, zeroThreshold: 2 ** -128, classic: true, ...o }
}

/** Decodes one NativeBuckets through a histogram family's protobuf encoding. */
function decode (fill: (h: HistogramFamily) => void, c: NativeHistogramConfig): any {
  const family = new HistogramFamily({ name: 'h', help: 'h', labelNames: [], buckets: [1], native: c })
  fill(family)
  const w = new ProtoWriter()
  const at = w.begin()
  w.string(1, 'h')
  w.uint(3, 4)
  family.encodeSeries(w)
  w.end(at)
  return decodeDelimited(w.toBuffer())[0].metric[0].histogram
}

t.test('schema from bucket factor, as client_golang picks it', async (t) => {
  t.same([1.1, 2, 1.0001, 65536, 4, 1.5, 1.0027].map(schemaForFactor), [3, 0, 8, -4, -1, 1, 8])
  for (const f of [1.01, 1.05, 1.1, 1.3, 2, 3, 10]) {
    const s = schemaForFactor(f)
    t.ok(2 ** (2 ** -s) <= f && (s === -4 || 2 ** (2 ** -(s - 1)) > f), `factor ${f}: schema ${s} is the coarsest within it`)
  }
  t.ok(Math.abs(relativeError(3) - 0.0433) < 0.0001, 'schema 3: 4.3% at most')
})

t.test('bucket keys: exact at powers of two, the definition elsewhere, subnormals', async (t) => {
  for (let s = -4; s <= 8; s++) {
    for (const e of [-1074, -1022, -20, -1, 0, 1, 3, 10, 1023]) {
      const expected = s > 0 ? e * 2 ** s : Math.ceil(e / 2 ** -s)
      if (bucketKey(2 ** e, s) !== expected) t.fail(`2^${e} at schema ${s}: ${bucketKey(2 ** e, s)}, expected ${expected}`)
    }
    for (let i = 0; i < 2000; i++) {
      const v = 2 ** ((random() - 0.5) * 80)
      const k = bucketKey(v, s)
      if (k !== referenceKey(v, s)) t.fail(`${v} at schema ${s}: ${k}, expected ${referenceKey(v, s)}`)
    }
  }
  // Every boundary of every positive schema belongs to the bucket below it; the next double above to the next.
  const next = (v: number): number => {
    const f = new Float64Array([v])
    new BigUint64Array(f.buffer)[0]++
    return f[0]
  }
  for (let s = 1; s <= 8; s++) {
    const n = 2 ** s
    for (let i = 0; i < n; i++) {
      const v = 2 ** (i / n)
      if (bucketKey(v, s) !== i || bucketKey(next(v), s) !== i + 1) t.fail(`boundary 2^(${i}/${n}): ${bucketKey(v, s)}, ${bucketKey(next(v), s)}`)
    }
  }
  t.equal(bucketKey(1, 0), 0)
  t.equal(bucketKey(2, 0), 1)
  t.equal(bucketKey(3, 0), 2)
  t.equal(bucketKey(0.5, 0), -1)
  t.equal(bucketKey(4, -1), 1, '(1, 4] is bucket 1 at schema -1')
  t.equal(bucketKey(5e-324, 0), -1074, 'the smallest subnormal')
})

t.test('observations decoded from protobuf: every bucket count by the definition', async (t) => {
  const values: number[] = []
  for (let i = 0; i < 5000; i++) values.push(random() < 0.1 ? -(10 ** (random() - 3)) : 10 ** (random() * 4 - 4)) // 0.1 ms .. 1 s, and -1 ms .. -10 ms: 133 buckets
  values.push(0, 0, 2 ** -130)
  const h = decode((f) => { const s = f.child(); for (const v of values) s.observe(v) }, config())
  t.equal(h.schema, 3)
  t.equal(h.zeroThreshold, 2 ** -128)
  t.equal(h.zeroCount, 3)
  t.equal(h.sampleCount, values.length)
  const pos = new Map<number, number>()
  const neg = new Map<number, number>()
  for (const v of values) {
    if (v === 0 || Math.abs(v) <= 2 ** -128) continue
    const m = v > 0 ? pos : neg
    const k = referenceKey(Math.abs(v), 3)
    m.set(k, (m.get(k) ?? 0) + 1)
  }
  t.same(Object.fromEntries(nativeBuckets(h.positiveSpan, h.positiveDelta)), Object.fromEntries(pos))
  t.same(Object.fromEntries(nativeBuckets(h.negativeSpan, h.negativeDelta)), Object.fromEntries(neg))
})

t.test('too many buckets halve the resolution; memory stays within maxBuckets', async (t) => {
  const c = config({ maxBuckets: 20 })
  const n = new NativeBuckets(c)
  const values: number[] = []
  for (let i = 0; i < 3000; i++) {
    const v = 10 ** (random() * 8 - 6) // 1 µs .. 100 s
    values.push(v)
    n.observe(v)
    if (n.positive.counts.length > 20) t.fail(`window of ${n.positive.counts.length} keys`)
  }
  t.ok(n.schema < 3, `schema reduced to ${n.schema}`)
  t.ok(n.positive.span <= 20, `${n.positive.span} buckets`)
  const h = decode((f) => { const s = f.child(); for (const v of values) s.observe(v) }, c)
  t.equal(h.schema, n.schema)
  const expected = new Map<number, number>()
  for (const v of values) expected.set(referenceKey(v, n.schema), (expected.get(referenceKey(v, n.schema)) ?? 0) + 1)
  t.same(Object.fromEntries(nativeBuckets(h.positiveSpan, h.positiveDelta)), Object.fromEntries(expected), 'each count as if observed at the final schema')
})

t.test('after a reset (registry.resetMetrics()), only later observations count, in the right buckets', async (t) => {
  const first = [0.003, 0.2, 5]
  const later = [0.0012, 0.04, 0.04, 3]
  const h = decode((f) => {
    const s = f.child()
    for (const v of first) s.observe(v)
    s.zero()
    for (const v of later) s.observe(v)
  }, config())
  const expected = new Map<number, number>()
  for (const v of later) expected.set(referenceKey(v, 3), (expected.get(referenceKey(v, 3)) ?? 0) + 1)
  t.equal(h.sampleCount, later.length)
  t.same(Object.fromEntries(nativeBuckets(h.positiveSpan, h.positiveDelta)), Object.fromEntries(expected))
  const n = new NativeBuckets(config())
  for (const v of [0.5, 2, 8]) n.observe(v)
  n.reset()
  n.observe(4)
  t.same([n.positive.lo, n.positive.hi, n.positive.span], [16, 16, 1], 'the populated range is the later observation\'s only')
})

t.test('merging two histograms of different schemas is exact at the coarser one', async (t) => {
  const a = new NativeBuckets(config({ schema: 4 }))
  const b = new NativeBuckets(config({ schema: 2 }))
  const values: number[] = []
  for (let i = 0; i < 2000; i++) {
    const v = 10 ** (random() * 3 - 3)
    values.push(v);
    (i % 2 === 0 ? a : b).observe(v)
  }
  a.mergeSnapshot(b.snapshot())
  t.equal(a.schema, 2)
  const expected = new Map<number, number>()
  for (const v of values) expected.set(referenceKey(v, 2), (expected.get(referenceKey(v, 2)) ?? 0) + 1)
  const got = new Map<number, number>()
  for (let k = a.positive.lo; k <= a.positive.hi; k++) if (a.positive.count(k) !== 0) got.set(k, a.positive.count(k))
  t.same(Object.fromEntries(got), Object.fromEntries(expected))
})

t.test('the option: defaults, validation', async (t) => {
  t.same(resolveOptions({ nativeHistograms: true }).nativeHistograms, { bucketFactor: 1.1, schema: 3, maxBuckets: 160, zeroThreshold: 2 ** -128, classic: true })
  t.equal(resolveOptions({}).nativeHistograms, null)
  t.equal(resolveOptions({ nativeHistograms: { bucketFactor: 2, classic: false } }).nativeHistograms?.schema, 0)
  t.throws(() => resolveOptions({ nativeHistograms: { bucketFactor: 1 } }), { code: 'FNM_ERR_OPTION_INVALID', message: /nativeHistograms\.bucketFactor/ })
  t.throws(() => resolveOptions({ nativeHistograms: { maxBuckets: 0 } }), { code: 'FNM_ERR_OPTION_INVALID', message: /nativeHistograms\.maxBuckets/ })
  t.throws(() => resolveOptions({ nativeHistograms: { zeroThreshold: -1 } }), { code: 'FNM_ERR_OPTION_INVALID', message: /nativeHistograms\.zeroThreshold/ })
  t.throws(() => resolveOptions({ nativeHistograms: { classic: 'no' } }), { code: 'FNM_ERR_OPTION_INVALID', message: /nativeHistograms\.classic/ })
  t.throws(() => resolveOptions({ nativeHistograms: { factor: 2 } }), { code: 'FNM_ERR_OPTION_UNKNOWN', message: /nativeHistograms\.factor/ })
  t.throws(() => resolveOptions({ nativeHistograms: 'yes' }), { code: 'FNM_ERR_OPTION_INVALID' })
  t.throws(() => resolveOptions({ exemplars: 1 }), { code: 'FNM_ERR_OPTION_INVALID', message: /exemplars/ })
})

async function appWith (t: any, nativeHistograms: unknown): Promise<{ pb: any[], text: string }> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, nativeHistograms } as never)
  app.get('/a', async () => 'a')
  for (let i = 0; i < 5; i++) await app.inject('/a')
  const pb = decodeDelimited((await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } })).rawPayload)
  return { pb, text: (await app.inject('/metrics')).body }
}

t.test('the plugin: native buckets on the duration families only, classic alongside by default', async (t) => {
  const { pb, text } = await appWith(t, true)
  const byName = new Map(pb.map((f) => [f.name, f]))
  const d = byName.get('http_request_duration_seconds').metric[0].histogram
  t.equal(d.schema, 3)
  t.equal(d.sampleCount, 5)
  t.equal(d.bucket.length, 18, 'classic buckets kept')
  let native = 0
  for (const c of nativeBuckets(d.positiveSpan, d.positiveDelta).values()) native += c
  t.equal(native + (d.zeroCount ?? 0), 5, 'every request in a native bucket')
  t.ok(byName.get('http_request_phase_duration_seconds').metric.every((m: any) => m.histogram.schema === 3))
  t.notOk('schema' in byName.get('http_request_size_bytes').metric[0].histogram, 'size histograms stay classic')
  const plain = await appWith(t, false)
  const names = (body: string): string[] => body.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.slice(0, l.lastIndexOf(' '))).sort()
  t.same(names(text), names(plain.text), 'the text exposition has the same series with native histograms on')
})

t.test('classic: false leaves only native buckets in protobuf', async (t) => {
  const { pb, text } = await appWith(t, { classic: false })
  const d = pb.find((f) => f.name === 'http_request_duration_seconds').metric[0].histogram
  t.equal(d.schema, 3)
  t.notOk('bucket' in d && d.bucket.length > 0, 'no classic buckets')
  t.match(text, /http_request_duration_seconds_bucket\{/, 'text keeps classic buckets: it cannot carry native ones')
})

/** The native buckets the definition gives for `values` at a schema, zero bucket up to `zt`: [zeroCount, positive, negative]. */
function referenceBuckets (values: number[], schema: number, zt: number): [number, Map<number, number>, Map<number, number>] {
  let zero = 0
  const pos = new Map<number, number>()
  const neg = new Map<number, number>()
  for (const v of values) {
    if (Math.abs(v) <= zt) { zero++; continue }
    const m = v > 0 ? pos : neg
    const k = referenceKey(Math.abs(v), schema)
    m.set(k, (m.get(k) ?? 0) + 1)
  }
  return [zero, pos, neg]
}

function span (m: Map<number, number>): number {
  return m.size === 0 ? 0 : Math.max(...m.keys()) - Math.min(...m.keys()) + 1
}

/** A side's counts (-k: k empty buckets) as a map of key to count. */
function sideMap (offset: number, counts: number[]): Map<number, number> {
  const m = new Map<number, number>()
  let key = offset
  for (const c of counts) {
    if (c < 0) { key -= c; continue }
    if (c !== 0) m.set(key, c)
    key++
  }
  return m
}

/** A flat snapshot as [schema, zeroThreshold, zeroCount, positive, negative]. */
function unpack (snap: number[]): [number, number, number, Map<number, number>, Map<number, number>] {
  const n = snap[4]
  return [snap[0], snap[1], snap[2], sideMap(snap[3], snap.slice(5, 5 + n)), sideMap(snap[5 + n], snap.slice(6 + n))]
}

t.test('snapshots of several processes merge, in any order, to one histogram: schemas and zero thresholds reconciled, every count by the definition', async (t) => {
  for (let round = 0; round < 20; round++) {
    const sources: Array<{ config: NativeHistogramConfig, values: number[], buckets: NativeBuckets }> = []
    const n = 2 + Math.floor(random() * 4)
    for (let i = 0; i < n; i++) {
      const c = config({ schema: Math.floor(random() * 6), maxBuckets: 10 + Math.floor(random() * 150), zeroThreshold: [2 ** -128, 2 ** -128, 0.002, 0.0005][Math.floor(random() * 4)] })
      const b = new NativeBuckets(c)
      const values: number[] = []
      const count = 20 + Math.floor(random() * 200)
      for (let j = 0; j < count; j++) {
        const r = random()
        const v = r < 0.03 ? 0 : (r < 0.13 ? -1 : 1) * 10 ** (random() * 8 - 5)
        values.push(v)
        b.observe(v)
      }
      sources.push({ config: c, values, buckets: b })
    }
    // Each source's own schema, by the definition: the finest at or below its configured one at which its buckets fit.
    let schema = 3
    for (const s of sources) {
      let own = s.config.schema
      for (;; own--) {
        const [, pos, neg] = referenceBuckets(s.values, own, s.config.zeroThreshold)
        if (span(pos) + span(neg) <= s.config.maxBuckets || own === -4) break
      }
      t.equal(s.buckets.schema, own, `round ${round}: a source reduces its resolution only as far as it must`)
      schema = Math.min(schema, own)
    }
    // The merge, at maxBuckets 80: the widest zero threshold's bucket and those below it join the zero bucket.
    const all = sources.flatMap((s) => s.values)
    const thresholds = sources.map((s) => s.config.zeroThreshold)
    const widest = Math.max(2 ** -128, ...thresholds)
    const widened = thresholds.some((z) => z !== 2 ** -128)
    let expected: [number, Map<number, number>, Map<number, number>]
    let zt: number
    for (;; schema--) {
      zt = widened ? 2 ** (referenceKey(widest, schema) / 2 ** schema) : 2 ** -128
      expected = referenceBuckets(all, schema, zt)
      if (span(expected[1]) + span(expected[2]) <= 80 || schema === -4) break
    }
    const snapshots: string[] = []
    for (let order = 0; order < 3; order++) {
      const list = [...sources]
      if (order === 1) list.reverse()
      if (order === 2) list.sort(() => random() - 0.5)
      const merged = new NativeBuckets(config({ maxBuckets: 80 }))
      merged.reconcileZero(list.map((s) => s.config.zeroThreshold))
      // One by one, or all at once (the one-pass merge a scrape uses when it can).
      if (order === 2) merged.mergeSnapshots(list.map((s) => s.buckets.snapshot()))
      else for (const s of list) merged.mergeSnapshot(s.buckets.snapshot())
      const [mSchema, mZt, mZero, pos, neg] = unpack(merged.snapshot())
      if (order === 0) {
        t.equal(mSchema, schema, `round ${round}: schema ${schema}`)
        t.equal(mZt, zt, `round ${round}: zero threshold ${zt}`)
        t.equal(mZero, expected[0], `round ${round}: zero bucket`)
        t.same(Object.fromEntries(pos), Object.fromEntries(expected[1]), `round ${round}: positive buckets`)
        t.same(Object.fromEntries(neg), Object.fromEntries(expected[2]), `round ${round}: negative buckets`)
      }
      snapshots.push(JSON.stringify(merged.snapshot()))
    }
    t.equal(new Set(snapshots).size, 1, `round ${round}: the same histogram in every order`)
  }
})

t.test('a snapshot less an earlier one of the same series: exactly the observations in between, at the schema reached', async (t) => {
  const c = config({ maxBuckets: 30 })
  const live = new NativeBuckets(c)
  const first = Array.from({ length: 200 }, () => 10 ** (random() * 2 - 3)) // 1 ms .. 100 ms
  for (const v of first) live.observe(v)
  const base = live.snapshot()
  const later = Array.from({ length: 300 }, () => 10 ** (random() * 7 - 4)) // widens: the resolution goes down
  for (const v of later) live.observe(v)
  t.ok(live.schema < base[0], `schema ${base[0]} -> ${live.schema}`)
  const diff = live.snapshot(base)
  const [zero, pos] = referenceBuckets(later, live.schema, 2 ** -128)
  const [dSchema, , dZero, dPos] = unpack(diff)
  t.equal(dSchema, live.schema)
  t.equal(dZero, zero)
  t.same(Object.fromEntries(dPos), Object.fromEntries(pos))
  const sum = new NativeBuckets(config({ maxBuckets: 1000, schema: 8 }))
  sum.mergeSnapshot(base)
  sum.mergeSnapshot(diff)
  t.same(sum.snapshot(), live.snapshot(), 'the earlier snapshot and the difference add up to the whole')
  t.same(live.snapshot(live.snapshot()), [live.schema, 2 ** -128, 0, 0, 0, 0], 'nothing since: empty')
  const spread = new NativeBuckets(config())
  for (const v of [-8, -0.5, 0, 1, 1, 2 ** 0.125 * 1.01, 4]) spread.observe(v)
  // 1, 1 at key 0; 2^(1/8) * 1.01 at key 2; 4 at key 16; -0.5 at key -8, -8 at key 24 (negative side); 0 in the zero bucket.
  t.same(spread.snapshot(), [3, 2 ** -128, 1, 0, 5, 2, 0, 1, -13, 1, -8, 1, -31, 1], 'the file form: offsets, empty buckets (one: 0, a run of k: -k), the positive count')
})
