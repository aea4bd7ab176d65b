/**
 * Multiprocess mode when the directory fails after start-up: a full filesystem (a real small
 * tmpfs mounted by the test, as root), a read-only one, a vanished directory; and a torn or
 * corrupt archive. Scrapes still answer from memory and whatever files can be read, every failure
 * is counted in metrics_errors_total and logged once; a corrupt archive is set aside.
 */
import t from 'tap'
import Fastify from 'fastify'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { Registry } from 'prom-client'
import netboxMetrics from '../lib/index'
import { MetricSet } from '../lib/metrics'
import { ARCHIVE_FILE, hostId, MultiprocessStore, type ArchiveSnapshot, type ProcessSnapshot } from '../lib/multiprocess'
import { dirFiles, processFiles, requestsTotal, tempDir } from './helpers/multiprocess'
import { samples } from './helpers/scrape'

const FORMAT = 'fastify-netbox-metrics/multiprocess'
const HOUR = 3_600_000

/** Mounts a tmpfs of `size` on a new directory; undefined (and why) where that is not allowed. */
function mountTmpfs (t: { teardown: (fn: () => void) => void }, size: string): { dir: string } | { skip: string } {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return { skip: 'needs root on Linux to mount a tmpfs' }
  const dir = mkdtempSync(join(tmpdir(), 'fnm-full-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' })
  } catch (err) {
    rmdirSync(dir)
    return { skip: `mount -t tmpfs is not allowed here (${String((err as { stderr?: Buffer }).stderr ?? err).trim()})` }
  }
  t.teardown(() => {
    spawnSync('umount', ['-l', dir])
    rmSync(dir, { recursive: true, force: true })
  })
  return { dir }
}

/** Fills the filesystem of `dir` until ENOSPC; returns the filler's path. */
function fill (dir: string): string {
  const path = join(dir, 'filler')
  try {
    writeFileSync(path, Buffer.alloc(64 * 1024 * 1024))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
  }
  return path
}

/** An app whose store writes only when it serves a scrape (so failures can be counted exactly). */
async function app (dir: string, logs?: string[]): Promise<ReturnType<typeof Fastify>> {
  const stream = new Writable({ write (chunk, _enc, cb) { logs?.push(String(chunk)); cb() } })
  const a = Fastify({ logger: logs === undefined ? false : { level: 'warn', stream } })
  await a.register(netboxMetrics, { enabled: true, defaultMetrics: false, multiprocess: { dir, flushIntervalMs: HOUR } })
  a.get('/x', async () => 'x')
  await a.ready()
  return a
}

async function scrapeOf (a: ReturnType<typeof Fastify>): Promise<{ status: number, requests: number, errors: number }> {
  const res = await a.inject('/metrics')
  return { status: res.statusCode, requests: requestsTotal(res.body, '/x'), errors: samples(res.body).get('metrics_errors_total{component="multiprocess"}') ?? 0 }
}

t.test('a full, then read-only tmpfs: scrapes answer from memory and the readable files', async (t) => {
  const mounted = mountTmpfs(t, '256k')
  if ('skip' in mounted) { t.skip(mounted.skip); return }
  const { dir } = mounted
  const logs: string[] = []
  const a = await app(dir, logs)
  const b = await app(dir)
  t.teardown(async () => { await a.close(); await b.close() })
  for (let i = 0; i < 3; i++) await a.inject('/x')
  for (let i = 0; i < 2; i++) await b.inject('/x')
  await b.inject('/metrics') // b's file now holds its 2 requests
  t.same(await scrapeOf(a), { status: 200, requests: 5, errors: 0 })

  const filler = fill(dir)
  await a.inject('/x')
  // Each scrape's own write fails (ENOSPC) after its snapshot was taken: the count shows at the next.
  t.same(await scrapeOf(a), { status: 200, requests: 6, errors: 0 }, 'disk full: 200, a\'s requests from memory, b\'s from its file (a 500 before)')
  t.same(await scrapeOf(a), { status: 200, requests: 6, errors: 1 }, 'the failed write is counted')
  t.same(await scrapeOf(a), { status: 200, requests: 6, errors: 2 }, 'one per failed write')
  t.match(dirFiles(dir).filter((n) => n.startsWith('.fnm-tmp-')), [], 'no partial temporary file left behind')

  unlinkSync(filler)
  t.same(await scrapeOf(a), { status: 200, requests: 6, errors: 3 }, 'space again: the write succeeds, no new error')
  t.equal(requestsTotal(String((await b.inject('/metrics')).body), '/x'), 6, 'b sees a\'s request written after the disk was freed')

  execFileSync('mount', ['-o', 'remount,ro', dir])
  await a.inject('/x')
  t.same(await scrapeOf(a), { status: 200, requests: 7, errors: 3 }, 'read-only: 200, exact')
  t.same(await scrapeOf(a), { status: 200, requests: 7, errors: 4 }, 'EROFS counted')
  execFileSync('mount', ['-o', 'remount,rw', dir])
  t.equal(logs.filter((l) => l.includes('fastify-netbox-metrics: an error inside the metrics instrumentation')).length, 1, 'logged once')
})

t.test('a vanished directory: scrapes answer from memory', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fnm-gone-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const a = await app(dir)
  t.teardown(async () => { await a.close() })
  for (let i = 0; i < 4; i++) await a.inject('/x')
  rmSync(dir, { recursive: true, force: true })
  t.same(await scrapeOf(a), { status: 200, requests: 4, errors: 0 }, '200, exact from memory (a 500 before)')
  // The write (ENOENT) and the listing (ENOENT) of the previous scrape.
  t.same(await scrapeOf(a), { status: 200, requests: 4, errors: 2 })
})

/** A pid that is certainly dead: a child that has exited. */
function deadPid (): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString())
}

t.test('a torn archive is set aside, counted, and the merges go on', async (t) => {
  const dir = tempDir(t)
  const registry = new Registry()
  const metrics = new MetricSet({ registry, prefix: '', buckets: { latency: [0.1], size: [100] }, maxSeriesPerMetric: 100 })
  const errors: string[] = []
  const store = MultiprocessStore.acquire({ registry, prefix: '', config: { dir, flushIntervalMs: HOUR, source: 'test' }, onError: (_c, err) => errors.push((err as Error).message) })
  t.teardown(async () => { await store.release() })
  metrics.get('httpRequests').child('GET', '/x', '200').value += 4

  // A dead process's file with 7 requests, and an archive cut short (it held 5 more).
  const pid = deadPid()
  const id = `${hostId()}-${pid}-0-${'ab'.repeat(6)}`
  const dead: ProcessSnapshot = {
    format: FORMAT, v: 1, host: hostId(), pid, pstart: '0', id, startedAt: 0, heartbeat: Date.now(), intervalMs: 50, seq: 1, final: false,
    families: [{ name: 'http_requests_total', type: 'counter', help: 'h', labelNames: ['method', 'route', 'status_code'], series: [['GET', '/x', '200', 7]] }],
    foreign: []
  }
  writeFileSync(join(dir, `fnm-${id}.json`), JSON.stringify(dead))
  const whole = JSON.stringify({ format: `${FORMAT}/archive`, v: 1, merged: {}, families: [{ name: 'http_requests_total', type: 'counter', help: 'h', labelNames: ['method', 'route', 'status_code'], series: [['GET', '/x', '200', 5]] }] })
  writeFileSync(join(dir, ARCHIVE_FILE), whole.slice(0, whole.length - 20))

  t.equal(requestsTotal(await store.render('prometheus'), '/x'), 4 + 7, 'served: the torn archive is left out')
  t.equal(errors.length, 1, 'and reported')
  store.maintain()
  const aside = dirFiles(dir).filter((n) => n.startsWith('fnm-archive.corrupt-'))
  t.equal(aside.length, 1, 'the torn archive is set aside (merges stopped for good before)')
  t.equal(readFileSync(join(dir, aside[0]), 'utf8'), whole.slice(0, whole.length - 20), 'as it was')
  t.equal(errors.length, 2, 'the setting aside is reported')
  t.equal(processFiles(dir).length, 1, 'the dead file was merged into a new archive')
  const archive = JSON.parse(readFileSync(join(dir, ARCHIVE_FILE), 'utf8')) as ArchiveSnapshot
  t.same(Object.keys(archive.merged), [id])
  t.equal(requestsTotal(await store.render('prometheus'), '/x'), 4 + 7, 'the torn archive\'s 5 are lost (the documented bound), nothing else')
  t.equal(errors.length, 2, 'no further error')
})
