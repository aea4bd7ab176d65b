/** The built package imports from CommonJS and from ESM, default and named (run after `npm run build`). */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, symlinkSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const root = resolve(__dirname, '..')
const made: string[] = []
// rmSync removes the symlinks themselves, never what they point to.
t.teardown(() => { for (const dir of made) rmSync(dir, { recursive: true, force: true }) })

function consumer (): string {
  // A consumer project whose node_modules resolves the package by name, like an installed copy.
  const dir = mkdtempSync(join(tmpdir(), 'fnm-consumer-'))
  made.push(dir)
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(root, join(dir, 'node_modules', 'fastify-netbox-metrics'), 'dir')
  for (const dep of ['fastify', 'prom-client', 'fastify-plugin']) symlinkSync(join(root, 'node_modules', dep), join(dir, 'node_modules', dep), 'dir')
  return dir
}

const check = `
  const app = Fastify()
  await app.register(plugin, { enabled: true, defaultMetrics: false })
  app.get('/x', async () => 'x')
  await app.inject('/x')
  const body = (await app.inject('/metrics')).body
  if (!body.includes('http_requests_total{method="GET",route="/x",status_code="200"} 1')) throw new Error('no metrics')
  await app.close()
  console.log(typeof plugin, plugin === named, typeof errors.FNM_ERR_OPTION_INVALID, typeof MetricsSubscriber, typeof instrumentCache, typeof InstrumentedCacheAdapter)
`

t.test('require()', async (t) => {
  const dir = consumer()
  writeFileSync(join(dir, 'index.cjs'), `
const plugin = require('fastify-netbox-metrics')
const { netboxMetrics: named, errors, MetricsSubscriber, instrumentCache, InstrumentedCacheAdapter } = require('fastify-netbox-metrics')
const Fastify = require('fastify')
if (plugin.default !== plugin) throw new Error('default')
;(async () => { ${check} })().catch((e) => { console.error(e); process.exit(1) })
`)
  t.equal(execFileSync(process.execPath, ['index.cjs'], { cwd: dir }).toString().trim(), 'function true function function function function')
})

t.test('import', async (t) => {
  const dir = consumer()
  writeFileSync(join(dir, 'index.mjs'), `
import plugin, { netboxMetrics as named, errors, MetricsSubscriber, instrumentCache, InstrumentedCacheAdapter } from 'fastify-netbox-metrics'
import Fastify from 'fastify'
${check}
`)
  t.equal(execFileSync(process.execPath, ['index.mjs'], { cwd: dir }).toString().trim(), 'function true function function function function')
})

t.test('TypeScript declarations type app.metrics, config.metrics and the options', async (t) => {
  const dir = consumer()
  symlinkSync(join(root, 'node_modules', '@types'), join(dir, 'node_modules', '@types'), 'dir')
  writeFileSync(join(dir, 'index.ts'), `
import Fastify from 'fastify'
import netboxMetrics, { netboxMetrics as named, type NetboxMetricsOptions } from 'fastify-netbox-metrics'
const opts: NetboxMetricsOptions = { enabled: true, endpoint: '/m', buckets: { latency: [1] }, exclude: ['/a', /b/] }
const app = Fastify()
void app.register(netboxMetrics, opts)
void app.register(named, { prefix: 'x_' })
app.get('/h', { config: { metrics: false } }, async () => 'ok')
const r: import('prom-client').Registry = app.metrics.registry
const e: boolean = app.metrics.enabled
void r; void e
// @ts-expect-error unknown option
void app.register(netboxMetrics, { endpiont: '/m' })
// @ts-expect-error config.metrics is a boolean
app.get('/i', { config: { metrics: 'no' } }, async () => 'ok')
`)
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', skipLibCheck: true, types: ['node'] }, files: ['index.ts'] }))
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  let out = ''
  try { execFileSync(process.execPath, [tsc, '-p', dir]) } catch (err) { out = String((err as { stdout?: Buffer }).stdout) }
  t.equal(out, '', 'the consumer type-checks')
})
