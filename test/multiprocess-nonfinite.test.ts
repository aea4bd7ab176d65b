/**
 * Every value survives the shared files exactly: NaN, +Inf and -Inf of counters, gauges,
 * histogram sums and summaries, read through another process's scrape in every format (text,
 * OpenMetrics, protobuf), while the writer runs, after it exits, and once its file is merged into
 * the archive. Before the fix, JSON wrote them as null: gauges came out NaN or -Inf, counters 0,
 * histogram sums without their infinite part.
 */
import t from 'tap'
import { Registry } from 'prom-client'
import { MultiprocessStore } from '../lib/multiprocess'
import { processFiles, rpc, startFixture, tempDir } from './helpers/multiprocess'
import { decodeDelimited, protobufSamples, textSamples } from './helpers/protobuf'

/** A sample value as the text formats spell it. */
function spell (v: number): string {
  return Number.isFinite(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf'
}

/** Every sample of a text exposition (labels sorted) with its value as written. */
function textValues (body: string): Map<string, string> {
  const out = new Map<string, string>()
  const keys = [...textSamples(body).keys()]
  const lines = body.split('\n').filter((l) => l !== '' && !l.startsWith('#'))
  lines.forEach((l, i) => out.set(keys[i], l.slice(l.lastIndexOf(' ') + 1)))
  return out
}

const ours = {
  'http_requests_total{method="GET",route="/inf",status_code="200"}': '+Inf',
  'http_request_duration_seconds_sum{method="GET",route="/pinf",status_code="200"}': '+Inf',
  'http_request_duration_seconds_count{method="GET",route="/pinf",status_code="200"}': '2',
  'http_request_duration_seconds_bucket{le="0.1",method="GET",route="/pinf",status_code="200"}': '1',
  'http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/pinf",status_code="200"}': '2',
  'http_request_duration_seconds_sum{method="GET",route="/ninf",status_code="200"}': '-Inf',
  'http_request_duration_seconds_sum{method="GET",route="/nan",status_code="200"}': 'NaN',
  app_big_total: '+Inf',
  app_big_seconds_sum: '+Inf',
  app_big_seconds_count: '2',
  'app_big_seconds_bucket{le="+Inf"}': '2',
  app_small_seconds_sum: '-Inf',
  'app_small_seconds_bucket{le="1"}': '2',
  app_big_bytes_sum: '+Inf',
  app_big_bytes_count: '2'
}
const gauges = { 'http_requests_in_flight{method="GET"}': 'NaN', app_nan: 'NaN', app_pinf: '+Inf', app_ninf: '-Inf' }

t.test('NaN, +Inf and -Inf through the shared files, in every format', async (t) => {
  const dir = tempDir(t)
  const writer = await startFixture('nonfinite-worker.js', { MP_DIR: dir })
  t.teardown(() => { if (writer.child.exitCode === null) writer.child.kill('SIGKILL') })
  await rpc(writer, { cmd: 'flush' })
  const store = MultiprocessStore.acquire({ registry: new Registry(), prefix: '', config: { dir, flushIntervalMs: 3_600_000, source: 'test' }, onError: (_c, err) => { t.error(err) } })
  t.teardown(async () => { await store.release() })

  const check = async (label: string, expected: Record<string, string>, absent: string[]): Promise<void> => {
    const formats = {
      text: textValues((await store.renderBuffer('prometheus')).toString()),
      OpenMetrics: textValues((await store.renderBuffer('openmetrics')).toString()),
      protobuf: new Map([...protobufSamples(decodeDelimited(await store.renderBuffer('protobuf')))].map(([k, v]) => [k, spell(v)]))
    }
    for (const [format, got] of Object.entries(formats)) {
      const seen: Record<string, string | undefined> = {}
      // OpenMetrics writes bucket bounds canonically (le="1.0").
      for (const k of Object.keys(expected)) seen[k] = got.get(format === 'OpenMetrics' ? k.replace('le="1"', 'le="1.0"') : k)
      t.same(seen, expected, `${label}, ${format}`)
      t.same(absent.filter((k) => got.has(k)), [], `${label}, ${format}: no gauge of a process that is gone`)
    }
  }
  await check('the writer running', { ...ours, ...gauges }, [])
  await rpc(writer, { cmd: 'exit' })
  await writer.exited
  await check('the writer exited (its final file)', ours, Object.keys(gauges))
  store.maintain()
  t.same(processFiles(dir).length, 1, 'the exited writer\'s file was merged into the archive')
  await check('from the archive', ours, Object.keys(gauges))
})
