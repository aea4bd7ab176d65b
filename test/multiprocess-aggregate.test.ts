/**
 * The pure parts of the multiprocess mode, without processes or files: the file format keeps
 * every number (NaN and ±Infinity included) through JSON, exact sums carry non-finite addends
 * as IEEE 754 addition does, and the aggregate combines counters, summaries, histograms (their
 * `_sum` exactly, across the archive too) and gauges by their mode.
 */
import t from 'tap'
import { Registry } from 'prom-client'
import { Aggregate } from '../lib/multiprocess/aggregate'
import { addToSum, exactSum, sumValue } from '../lib/multiprocess/exact'
import { decodeNumber, encodeNumber, parseSnapshot, serializeSnapshot, type FamilySnapshot, type ProcessSnapshot } from '../lib/multiprocess/format'

/** Every sample of a text exposition, `+Inf` and `-Inf` read as such. */
function samples (body: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    const v = line.slice(i + 1)
    out.set(line.slice(0, i), v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v))
  }
  return out
}

const odd = [NaN, Infinity, -Infinity, 0, 1.5, -2.25, Number.MAX_VALUE, Number.MIN_VALUE]

t.test('every number survives the file format', async (t) => {
  for (const v of odd) t.ok(Object.is(decodeNumber(JSON.parse(JSON.stringify(encodeNumber(v)))), v), `${String(v)} round-trips`)
  t.ok(Number.isNaN(decodeNumber(null)), 'version 1 wrote non-finite values as null: NaN')
  t.equal(decodeNumber(undefined), 0, 'a missing value is 0')
  const snap: ProcessSnapshot = {
    format: 'fastify-netbox-metrics/multiprocess', v: 2, host: '00000000', pid: 1, pstart: '0', id: 'x', startedAt: 0, heartbeat: 0, intervalMs: 1000, seq: 0, final: false,
    families: [{ name: 'g', type: 'gauge', help: 'g', labelNames: ['k'], mode: 'sum', series: odd.map((v, i) => [String(i), encodeNumber(v)]) }],
    foreign: []
  }
  const back = parseSnapshot<ProcessSnapshot>(serializeSnapshot(snap), false)
  t.ok(back !== undefined, 'parsed')
  t.ok(back?.families[0].series.every((row, i) => Object.is(decodeNumber(row[1]), odd[i])), 'every value as it was')
  t.equal(parseSnapshot('{"format":"something else","families":[]}', false), undefined, 'a foreign file is not a snapshot')
  t.equal(parseSnapshot('{"format":"fastify-netbox-me', false), undefined, 'nor a torn one')
})

t.test('exact sums with non-finite addends', async (t) => {
  const sum = (...xs: number[]): number => { const s = exactSum(); for (const x of xs) addToSum(s, x); return sumValue(s) }
  t.equal(sum(0.1, 0.2, 0.3), 0.6, 'exact: 0.6, not 0.6000000000000001')
  t.equal(sum(1, Infinity, 2), Infinity)
  t.equal(sum(-Infinity, 5), -Infinity)
  t.ok(Number.isNaN(sum(Infinity, -Infinity)), '+Inf + -Inf = NaN')
  t.ok(Number.isNaN(sum(NaN, 1)), 'NaN stays')
  t.equal(sum(), 0)
})

/** A one-family snapshot. */
function fam (f: Partial<FamilySnapshot> & Pick<FamilySnapshot, 'name' | 'type' | 'series'>): FamilySnapshot {
  return { help: f.name, labelNames: ['k'], ...f }
}

/** The exposition of an aggregate, as samples. */
async function render (agg: Aggregate): Promise<Map<string, number>> {
  const registry = agg.toRegistry(undefined, Registry)
  return samples(await registry.metrics())
}

t.test('gauges by mode over live sources, none from dead ones', async (t) => {
  const agg = new Aggregate((name) => { t.fail(`mismatch ${name}`) })
  const modes = ['sum', 'min', 'max', 'average', 'latest'] as const
  const values = [[0, 1], [-3, 2], [NaN, 5]]
  values.forEach(([v, heartbeat], source) => {
    agg.addFamilies(modes.map((mode) => fam({ name: `g_${mode}`, type: 'gauge', mode, series: [['a', encodeNumber(v)], ['b', encodeNumber(source === 2 ? 7 : v + 1)]] })), 'live', heartbeat)
  })
  agg.addFamilies(modes.map((mode) => fam({ name: `g_${mode}`, type: 'gauge', mode, series: [['b', 1000]] })), 'dead', 99)
  const s = await render(agg)
  t.same(modes.map((m) => s.get(`g_${m}{k="b"}`)), [1 + -2 + 7, -2, 7, 2, 7], 'b: 1, -2, 7 by sum, min, max, average, latest (the dead source left out)')
  t.same(modes.map((m) => Number.isNaN(s.get(`g_${m}{k="a"}`))), [true, true, true, true, true], 'a: 0, -3, NaN: NaN by every mode (latest: the freshest source is NaN)')
  const agg2 = new Aggregate(() => {})
  agg2.addFamilies([fam({ name: 'g', type: 'gauge', mode: 'max', series: [['a', 0]] })], 'live', 1)
  agg2.addFamilies([fam({ name: 'g', type: 'gauge', mode: 'max', series: [['a', -2]] })], 'live', 2)
  t.equal((await render(agg2)).get('g{k="a"}'), 0, 'max of 0 and -2 is 0 (the first value is not taken for "none yet")')
})

t.test('counters, summaries and histograms from every source; sums exact across the archive', async (t) => {
  const sources: FamilySnapshot[][] = [
    [fam({ name: 'c_total', type: 'counter', series: [['a', 1]] }), fam({ name: 's', type: 'summary', series: [['a', 0.1, 1]] }), fam({ name: 'h', type: 'histogram', buckets: [1], series: [['a', 0.1, 1, 1]] })],
    [fam({ name: 'c_total', type: 'counter', series: [['a', 2]] }), fam({ name: 's', type: 'summary', series: [['a', 0.2, 1]] }), fam({ name: 'h', type: 'histogram', buckets: [1], series: [['a', '+Inf', 1, 0, 1]] })],
    [fam({ name: 'c_total', type: 'counter', series: [['a', 3]] }), fam({ name: 's', type: 'summary', series: [['a', 0.3, 1]] }), fam({ name: 'h', type: 'histogram', buckets: [1], series: [['a', 0.2, 1, 1]] })]
  ]
  const direct = new Aggregate(() => {})
  sources.forEach((f, i) => direct.addFamilies(f, i === 0 ? 'live' : 'dead', 0))
  // The same through the archive: the two dead sources merged, then read back as the archive.
  const archive = new Aggregate(() => {}, true)
  sources.slice(1).forEach((f) => archive.addFamilies(f, 'dead', 0))
  const stored = parseSnapshot<{ format: string, v: number, merged: Record<string, number>, families: FamilySnapshot[] }>(serializeSnapshot({ format: 'fastify-netbox-metrics/multiprocess/archive', v: 2, merged: {}, families: archive.toSnapshots() }), true)
  const viaArchive = new Aggregate(() => {})
  viaArchive.addFamilies(sources[0], 'live', 0)
  viaArchive.addFamilies(stored?.families ?? [], 'dead', 0)
  for (const [label, agg] of [['directly', direct], ['through the archive', viaArchive]] as const) {
    const s = await render(agg)
    t.equal(s.get('c_total{k="a"}'), 6, `${label}: counter`)
    t.equal(s.get('s_sum{k="a"}'), 0.6, `${label}: summary _sum exact`)
    t.equal(s.get('s_count{k="a"}'), 3, `${label}: summary _count`)
    t.equal(s.get('h_sum{k="a"}'), Infinity, `${label}: histogram _sum +Inf`)
    t.same([s.get('h_bucket{k="a",le="1"}'), s.get('h_bucket{k="a",le="+Inf"}'), s.get('h_count{k="a"}')], [2, 3, 3], `${label}: histogram buckets and count`)
  }
})
