/**
 * Multiprocess mode inside one process: options and coded errors, aggregation rules, hand-over
 * on close, crash recovery (an archive that already lists a file, a stale lock, a corrupt file),
 * histograms with other buckets, and exact sums. The real multi-process behaviour is in
 * multiprocess-cluster.test.ts and multiprocess-processes.test.ts.
 */
import t from 'tap'
import Fastify from 'fastify'
import { spawnSync } from 'node:child_process'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import netboxMetrics from '../lib/index'
import { MetricSet } from '../lib/metrics'
import { addExact, ARCHIVE_FILE, exactValue, hostId, LOCK_FILE, MultiprocessStore, type ArchiveSnapshot, type ProcessSnapshot } from '../lib/multiprocess'
import { resolveOptions } from '../lib/options'
import { dirFiles, processFiles, requestsTotal, tempDir } from './helpers/multiprocess'
import { samples, scrape } from './helpers/scrape'

async function app (dir: string, extra: Record<string, unknown> = {}): Promise<ReturnType<typeof Fastify>> {
  const a = Fastify()
  await a.register(netboxMetrics, { enabled: true, defaultMetrics: false, multiprocess: { dir, flushIntervalMs: 50 }, ...extra })
  a.get('/x', async () => 'x')
  return a
}

/** A pid that is certainly dead: a child that has exited. */
function deadPid (): number {
  return spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString() as unknown as number * 1
}

const FORMAT = 'fastify-netbox-metrics/multiprocess'

function fakeProcessFile (dir: string, pid: number, requests: number, rand: string): { id: string, name: string } {
  const id = `${hostId()}-${pid}-0-${rand.repeat(6)}`
  const snap: ProcessSnapshot = {
    format: FORMAT, v: 1, host: hostId(), pid, pstart: '0', id, startedAt: 0, heartbeat: Date.now(), intervalMs: 50, seq: 1, final: false,
    families: [{ name: 'http_requests_total', type: 'counter', help: 'h', labelNames: ['method', 'route', 'status_code'], series: [['GET', '/x', '200', requests]] }],
    foreign: []
  }
  const name = `fnm-${id}.json`
  writeFileSync(join(dir, name), JSON.stringify(snap))
  return { id, name }
}

t.test('options', async (t) => {
  t.equal(resolveOptions({}, {}).multiprocess, null, 'off by default')
  t.match(resolveOptions({}, { PROMETHEUS_MULTIPROC_DIR: '/tmp/a' }).multiprocess, { dir: '/tmp/a', flushIntervalMs: 1000, source: 'PROMETHEUS_MULTIPROC_DIR' })
  t.match(resolveOptions({}, { prometheus_multiproc_dir: '/tmp/b' }).multiprocess, { dir: '/tmp/b', source: 'prometheus_multiproc_dir' }, 'the lowercase spelling too')
  t.match(resolveOptions({}, { PROMETHEUS_MULTIPROC_DIR: '/tmp/a', prometheus_multiproc_dir: '/tmp/b' }).multiprocess, { dir: '/tmp/a' }, 'the uppercase one wins')
  t.equal(resolveOptions({}, { PROMETHEUS_MULTIPROC_DIR: ' ' }).multiprocess, null, 'blank is unset')
  t.equal(resolveOptions({ multiprocess: false }, { PROMETHEUS_MULTIPROC_DIR: '/tmp/a' }).multiprocess, null, 'false turns it off')
  t.match(resolveOptions({ multiprocess: { flushIntervalMs: 250 } }, { PROMETHEUS_MULTIPROC_DIR: '/tmp/a' }).multiprocess, { dir: '/tmp/a', flushIntervalMs: 250 })
  t.match(resolveOptions({ multiprocess: { dir: 'rel' } }, {}).multiprocess, { dir: join(process.cwd(), 'rel'), source: 'option multiprocess.dir' }, 'made absolute')
  t.throws(() => resolveOptions({ multiprocess: {} }, {}), { code: 'FNM_ERR_OPTION_INVALID', message: /multiprocess\.dir.*PROMETHEUS_MULTIPROC_DIR/ })
  t.throws(() => resolveOptions({ multiprocess: true }, {}), { code: 'FNM_ERR_OPTION_INVALID' })
  t.throws(() => resolveOptions({ multiprocess: { dir: 3 } }, {}), { code: 'FNM_ERR_OPTION_INVALID', message: /multiprocess\.dir/ })
  t.throws(() => resolveOptions({ multiprocess: { dir: '/tmp', flushIntervalMs: 0 } }, {}), { code: 'FNM_ERR_OPTION_INVALID', message: /flushIntervalMs/ })
  t.throws(() => resolveOptions({ multiprocess: { dir: '/tmp', flushIntervalMs: 1.5 } }, {}), { code: 'FNM_ERR_OPTION_INVALID', message: /flushIntervalMs/ })
  t.throws(() => resolveOptions({ multiprocess: { dir: '/tmp', interval: 1 } }, {}), { code: 'FNM_ERR_OPTION_UNKNOWN', message: /multiprocess\.interval/ })
})

t.test('a missing, non-directory or unwritable directory is a coded error at registration', async (t) => {
  const dir = tempDir(t)
  const cases: Array<[string, RegExp]> = [[join(dir, 'nope'), /does not exist/]]
  writeFileSync(join(dir, 'file'), '')
  cases.push([join(dir, 'file'), /not a directory/])
  // root writes anywhere on a writable filesystem; /proc refuses new files even to root.
  cases.push([process.getuid?.() === 0 ? '/proc' : (() => { chmodSync(dir, 0o500); return dir })(), /not writable/])
  for (const [d, message] of cases) {
    const a = Fastify()
    await t.rejects(async () => { await a.register(netboxMetrics, { enabled: true, multiprocess: { dir: d } }).ready() }, { code: 'FNM_ERR_MULTIPROCESS_DIR', message }, d)
    await a.close()
  }
  chmodSync(dir, 0o700)
  const a = Fastify()
  const env = process.env.PROMETHEUS_MULTIPROC_DIR
  process.env.PROMETHEUS_MULTIPROC_DIR = join(dir, 'missing')
  t.teardown(() => { if (env === undefined) delete process.env.PROMETHEUS_MULTIPROC_DIR; else process.env.PROMETHEUS_MULTIPROC_DIR = env })
  await t.rejects(async () => { await a.register(netboxMetrics, { enabled: true }).ready() }, { code: 'FNM_ERR_MULTIPROCESS_DIR', message: /from PROMETHEUS_MULTIPROC_DIR/ }, 'named after the variable')
  await a.close()
  const off = Fastify()
  await off.register(netboxMetrics, { enabled: false }).ready()
  t.pass('a disabled plugin does not look at the directory')
  await off.close()
})

t.test('two stores in one process: sums, gauges, hand-over on close, no double count on reuse', async (t) => {
  const dir = tempDir(t)
  const a = await app(dir)
  const b = await app(dir)
  t.teardown(async () => { await a.close(); await b.close() })
  for (let i = 0; i < 3; i++) await a.inject('/x')
  for (let i = 0; i < 4; i++) await b.inject('/x')
  // Another process's counts reach the directory within one flush interval (50 ms here).
  await new Promise((resolve) => setTimeout(resolve, 200))
  const sa = await scrape(a)
  t.equal(requestsTotal(sa, '/x'), 7, 'a sees b\'s requests after b\'s next flush')
  t.equal(requestsTotal(await scrape(b), '/x'), 7, 'b sees a\'s requests')
  t.equal([...samples(sa).keys()].filter((k) => k.startsWith('fastify_info{')).length, 1, 'info gauge deduplicated')
  t.equal(samples(sa).get('http_requests_in_flight{method="GET"}'), 0)
  t.equal(processFiles(dir).length, 2)

  // A registry shared by two plugin instances has one store (its counts are not doubled).
  const registry = new Registry()
  const c1 = await app(dir, { registry })
  const c2 = await app(dir, { registry })
  await c1.inject('/x')
  t.equal(processFiles(dir).length, 3, 'one file for the shared registry')
  t.equal(requestsTotal(await scrape(c2), '/x'), 8)

  // Closing hands over: the file is merged into the archive at once.
  await c1.close()
  await c2.close()
  t.equal(processFiles(dir).length, 2, 'the closed store\'s file is gone')
  const archive = JSON.parse(readFileSync(join(dir, ARCHIVE_FILE), 'utf8')) as ArchiveSnapshot
  t.equal(Object.keys(archive.merged).length, 1, 'its id is recorded in the archive')
  t.equal(requestsTotal(await scrape(a), '/x'), 8, 'its totals are still counted, once')

  // The same registry used again: what was handed over is not written again.
  const c3 = await app(dir, { registry })
  t.teardown(async () => { await c3.close() })
  await c3.inject('/x')
  t.equal(requestsTotal(await scrape(c3), '/x'), 9, 'no double count when a registry is reused after close')
  t.equal(requestsTotal(await scrape(a), '/x'), 9)
})

t.test('crash recovery: merged-but-not-removed files, stale locks, corrupt files', async (t) => {
  const dir = tempDir(t)
  const a = await app(dir)
  t.teardown(async () => { await a.close() })
  await a.inject('/x')

  // A merger crashed between writing the archive and removing the file: the file is not counted again.
  const pid = deadPid()
  const f = fakeProcessFile(dir, pid, 5, 'ab')
  const archive: ArchiveSnapshot = {
    format: `${FORMAT}/archive`, v: 1, merged: { [f.id]: Date.now() },
    families: [{ name: 'http_requests_total', type: 'counter', help: 'h', labelNames: ['method', 'route', 'status_code'], series: [['GET', '/x', '200', 5]] }]
  }
  writeFileSync(join(dir, ARCHIVE_FILE), JSON.stringify(archive))
  t.equal(requestsTotal(await scrape(a), '/x'), 6, 'a file the archive lists is skipped')
  // A process died holding the lock: the lock is broken, the dead file merged (and not twice).
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ host: hostId(), pid, pstart: '0', id: 'dead', at: Date.now() }))
  const g = fakeProcessFile(dir, pid, 7, 'ef')
  t.ok(dirFiles(dir).includes(g.name))
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.notOk(dirFiles(dir).includes(LOCK_FILE), 'stale lock broken and released')
  t.same(processFiles(dir).length, 1, 'both dead files removed')
  t.equal(requestsTotal(await scrape(a), '/x'), 1 + 5 + 7, 'the crashed merge counted once, the dead file merged')

  // A corrupt file (never written by the store: writes are atomic) is left out and counted.
  writeFileSync(join(dir, `fnm-${hostId()}-${process.pid}-0-${'cd'.repeat(6)}.json`), '{"torn":')
  t.equal(requestsTotal(await scrape(a), '/x'), 13, 'the scrape is still served')
  const body = await scrape(a)
  t.ok((samples(body).get('metrics_errors_total{component="multiprocess"}') ?? 0) >= 1, 'counted in metrics_errors_total{component="multiprocess"}')
})

t.test('histograms with other buckets in another process are re-bucketed; _sum and _count exact', async (t) => {
  const dir = tempDir(t)
  const ra = new Registry()
  const rb = new Registry()
  const ma = new MetricSet({ registry: ra, prefix: '', buckets: { latency: [0.1, 1], size: [100] }, maxSeriesPerMetric: 100 })
  const mb = new MetricSet({ registry: rb, prefix: '', buckets: { latency: [0.05, 0.5, 5], size: [100] }, maxSeriesPerMetric: 100 })
  const config = { dir, flushIntervalMs: 1000, source: 'test' }
  const errors: unknown[] = []
  const sa = MultiprocessStore.acquire({ registry: ra, config, prefix: '', onError: (_c, e) => errors.push(e) })
  const sb = MultiprocessStore.acquire({ registry: rb, config, prefix: '', onError: (_c, e) => errors.push(e) })
  t.teardown(async () => { await sa.release(); await sb.release() })
  ma.get('httpDuration').child('GET', '/x', '200').observe(0.07)
  for (const v of [0.01, 0.3, 3, 30]) mb.get('httpDuration').child('GET', '/x', '200').observe(v)
  await sb.flush(false)
  const s = samples(await sa.render('prometheus'))
  const le = (b: string): number | undefined => s.get(`http_request_duration_seconds_bucket{method="GET",route="/x",status_code="200",le="${b}"}`)
  t.same([le('0.1'), le('1'), le('+Inf')], [2, 3, 5], 'each bucket of b goes into the first of a\'s bounds at least as large')
  t.equal(s.get('http_request_duration_seconds_count{method="GET",route="/x",status_code="200"}'), 5)
  t.equal(s.get('http_request_duration_seconds_sum{method="GET",route="/x",status_code="200"}'), 33.38)
  t.same(errors, [])
})

t.test('exact sums do not depend on the order of the processes', async (t) => {
  const xs = Array.from({ length: 500 }, (_, i) => Math.sin(i) * 1e-3 + 1e-3)
  const forward: number[] = []
  const backward: number[] = []
  for (const x of xs) addExact(forward, x)
  for (const x of [...xs].reverse()) addExact(backward, x)
  t.equal(exactValue(forward), exactValue(backward))
  const p: number[] = []
  for (const x of [0.1, 0.2, 0.3]) addExact(p, x)
  t.equal(exactValue(p), 0.6, 'correctly rounded (plain addition gives 0.6000000000000001)')
})
