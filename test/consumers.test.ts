/**
 * Consumer projects installed from the packed tarball, one per Prometheus client an app may have:
 * - only `@prometheus-io/client` (Node 22 or later, as that package requires: skipped with a
 *   message on Node 20; .ci/run runs the suite under Node 24 too),
 * - only prom-client,
 * - both (the app's registry then decides: `@prometheus-io/client`'s on Node 22+, prom-client's
 *   on Node 20),
 * - neither: registration throws FNM_ERR_CLIENT_MISSING, naming both.
 * Each compiles the README's quick start and its own app (the quick start with the app's own
 * metrics and its client's Registry passed in) under `strict`, with the package's declarations
 * checked (no skipLibCheck); serves /metrics in text, OpenMetrics (read by Debian's Python parser
 * when installed) and protobuf (decoded by protobufjs) with the app's metrics beside the package's
 * and start timestamps; and runs a two-process multiprocess scrape.
 * Packages come from npm's cache (`--prefer-offline`); the tarball is packed from this checkout's
 * build (`npm run build` first, as `npm test` does).
 */
import t from 'tap'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { codeBlock } from './helpers/markdown'
import { freePort, get, sleep, waitFor } from './helpers/net'
import { decodeDelimited, PROMETHEUS_PROTOBUF_ACCEPT } from './helpers/protobuf'

const root = resolve(__dirname, '..')
const work = mkdtempSync(join(tmpdir(), 'fnm-consumers-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) =>
  !/^npm_/i.test(k) && !['NODE_OPTIONS', 'NODE_V8_COVERAGE', 'TAP', 'TAP_CHILD_ID', 'PROMETHEUS_MULTIPROC_DIR', 'prometheus_multiproc_dir', 'METRICS_ENABLED'].includes(k) && !k.startsWith('_TAPJS') && !k.startsWith('TAP_')))
// npm and tsc run with the Node running this test (Node 24 under .ci/run's second pass).
env.PATH = `${resolve(process.execPath, '..')}:${env.PATH ?? ''}`

function run (cmd: string, args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}): string {
  return execFileSync(cmd, args, { cwd, env: { ...env, ...extraEnv }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 })
}

const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> }
const pinned = (name: string): string => `${name}@${lock.packages[`node_modules/${name}`].version}`

const nodeMajor = Number(process.versions.node.split('.')[0])
const ioSupported = nodeMajor >= 22
const PYTHON = process.env.FNM_PYTHON ?? '/usr/bin/python3'
const hasPythonParser = spawnSync(PYTHON, ['-c', 'import prometheus_client.openmetrics.parser'], { encoding: 'utf8' }).status === 0

// The tarball, packed from this checkout's build (files: dist/lib, dist/hooks, docs).
const packed = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], root)) as Array<{ filename: string }>
const tarball = join(work, packed[0].filename)

/** Every built file of the package: none may require a client by name (lib/client.ts resolves it). */
const distFiles = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((d) => d.isDirectory() ? distFiles(join(dir, d.name)) : d.name.endsWith('.js') ? [join(dir, d.name)] : [])
const hardPromClient = [...distFiles(join(root, 'dist', 'lib')), ...distFiles(join(root, 'dist', 'hooks'))].filter((f) => /require\("(prom-client|@prometheus-io\/client)"\)/.test(readFileSync(f, 'utf8'))).map((f) => f.slice(root.length + 1))
t.same(hardPromClient, [], 'no built file of the package requires a Prometheus client by name')

type Kind = 'io' | 'prom' | 'both' | 'none'
const PACKAGES: Record<Kind, string[]> = {
  io: ['@prometheus-io/client'],
  prom: ['prom-client'],
  both: ['@prometheus-io/client', 'prom-client'],
  none: []
}
/** The client whose Registry the app passes in. */
const appClient = (kind: Kind): string => kind === 'prom' || (kind === 'both' && !ioSupported) ? 'prom-client' : '@prometheus-io/client'

const quickStart = codeBlock(readFileSync(join(root, 'README.md'), 'utf8'), 'Quick start', 'ts')

/** The quick start with the app's own metrics, its client's Registry passed in, a port from the environment. */
function appSource (client: string): string {
  return `import Fastify from 'fastify'
import netboxMetrics from 'fastify-netbox-metrics'
import { Counter, Histogram, Registry, collectDefaultMetrics } from '${client}'

const registry = new Registry()
const jobs = new Counter({ name: 'app_jobs_total', help: 'Jobs done', labelNames: ['kind'], registers: [registry] })
const sizes = new Histogram({ name: 'app_payload_bytes', help: 'Payload sizes', buckets: [10, 100], registers: [registry] })

collectDefaultMetrics({ register: registry })   // the app's own default metrics, before the plugin: it adds none then

const app = Fastify()
await app.register(netboxMetrics, { enabled: true, registry, createdTimestamps: true })

app.get<{ Params: { id: string } }>('/api/dcim/devices/:id', async (request) => {
  jobs.inc({ kind: 'device' })
  sizes.observe(42)
  return { id: request.params.id }
})
app.get('/health', { config: { metrics: false } }, async () => 'ok')
app.get('/client', { config: { metrics: false } }, async () => ({ name: app.metrics.options.client.name, reason: app.metrics.options.client.reason }))

await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
`
}

/** Type checks only: either client's Registry is accepted, and app.metrics.registry is one. */
function typesSource (client: string): string {
  return `import Fastify from 'fastify'
import netboxMetrics, { type NetboxMetricsOptions } from 'fastify-netbox-metrics'
import { Registry } from '${client}'
const registry = new Registry()
const opts: NetboxMetricsOptions = { enabled: true, registry, createdTimestamps: true }
const app = Fastify()
void app.register(netboxMetrics, opts)
void app.register(netboxMetrics, { registry })
const r = app.metrics.registry
void r.metrics()
`
}

function makeProject (kind: Kind): { dir: string, install: Promise<string> } {
  const dir = join(work, kind)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${kind}`, private: true, type: 'module' }))
  const install = new Promise<string>((resolve, reject) => {
    const args = ['install', '--prefer-offline', '--no-audit', '--no-fund', '--engine-strict=false', tarball, ...['fastify', 'typescript', '@types/node', ...PACKAGES[kind]].map(pinned)]
    const child = spawn('npm', args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    child.stderr.on('data', (c: Buffer) => { out += c.toString() })
    child.on('close', (code) => code === 0 ? resolve(out) : reject(new Error(`npm install in ${kind}: ${String(code)}\n${out}`)))
  })
  install.catch(() => {})
  return { dir, install }
}

/** Starts the compiled app; resolves with its base URL and a stop function. */
async function start (dir: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ base: string, stop: () => Promise<void>, output: () => string }> {
  const port = await freePort()
  const child = spawn(process.execPath, [join(dir, 'dist', 'app.js')], { cwd: dir, env: { ...env, PORT: String(port), ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr?.on('data', (c: Buffer) => { output += c.toString() })
  const exited = new Promise((resolve) => child.on('close', resolve))
  const base = `http://127.0.0.1:${port}`
  await waitFor(`${base}/health`, child, () => output)
  return { base, output: () => output, stop: async () => { child.kill('SIGTERM'); await exited } }
}

/** A GET returning raw bytes. */
async function getBytes (url: string, accept: string): Promise<Buffer> {
  const res = await fetch(url, { headers: { accept } })
  return Buffer.from(await res.arrayBuffer())
}

const projects = Object.fromEntries((['io', 'prom', 'both', 'none'] as Kind[])
  .filter((k) => k !== 'io' || ioSupported)
  .map((k) => [k, makeProject(k)])) as Partial<Record<Kind, { dir: string, install: Promise<string> }>>

for (const kind of ['io', 'prom', 'both'] as Kind[]) {
  const client = appClient(kind)
  const skip = kind === 'io' && !ioSupported ? `@prometheus-io/client needs Node 22 or later (this is Node ${process.versions.node}); .ci/run runs this under Node 24` : false
  t.test(`a project with ${PACKAGES[kind].join(' and ')}: the app passes a ${client} Registry`, { skip }, async (t) => {
    const p = projects[kind]
    if (p === undefined) return
    await p.install
    const { dir } = p
    const present = ['@prometheus-io/client', 'prom-client'].filter((n) => existsSync(join(dir, 'node_modules', n, 'package.json')))
    t.same(present, PACKAGES[kind], 'npm installed no other client: both are optional peers')
    writeFileSync(join(dir, 'quick-start.ts'), quickStart)
    writeFileSync(join(dir, 'app.ts'), appSource(client))
    writeFileSync(join(dir, 'types.ts'), typesSource(client))
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, outDir: 'dist', types: ['node'] }, include: ['*.ts'] }))
    let diagnostics = ''
    try { run(process.execPath, [join(dir, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], dir) } catch (err) { diagnostics = String((err as { stdout?: string }).stdout ?? err) }
    t.equal(diagnostics, '', 'the quick start, the app and the type checks compile under strict, declarations checked')

    const app = await start(dir)
    try {
      t.same(JSON.parse((await get(`${app.base}/client`)).body), { name: client, reason: 'registry' }, 'the registry decided the client')
      const t0 = Date.now()
      t.equal((await get(`${app.base}/api/dcim/devices/1`)).status, 200)
      const text = (await get(`${app.base}/metrics`)).body
      t.match(text, /^app_jobs_total\{kind="device"\} 1$/m, 'text: the app\'s counter')
      t.match(text, /^http_requests_total\{method="GET",route="\/api\/dcim\/devices\/:id",status_code="200"\} 1$/m, 'text: the package\'s')
      t.equal(text.split('\n').filter((l) => l.startsWith('process_cpu_user_seconds_total ')).length, 1, 'default metrics once (the app\'s own)')
      const om = (await get(`${app.base}/metrics`, 5000, { accept: 'application/openmetrics-text' })).body
      t.match(om, /^app_jobs_total\{kind="device"\} 1$/m)
      t.match(om, /^http_requests_created\{method="GET",route="\/api\/dcim\/devices\/:id",status_code="200"\} \d+\.\d{3}$/m, 'OpenMetrics: _created (createdTimestamps)')
      if (hasPythonParser) {
        const r = spawnSync(PYTHON, ['-c', 'import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families\nprint(len(list(text_string_to_metric_families(sys.stdin.read()))))'], { input: om, encoding: 'utf8' })
        t.equal(r.status, 0, `the Python OpenMetrics parser accepts it ${r.stderr}`)
      }
      const families = decodeDelimited(await getBytes(`${app.base}/metrics`, PROMETHEUS_PROTOBUF_ACCEPT))
      // The series is made when the response has been sent (the client may see it first): before the scrape that shows it.
      const t1 = Date.now()
      const jobs = families.find((f) => f.name === 'app_jobs_total')
      t.equal(jobs?.metric?.[0]?.counter?.value, 1, 'protobuf: the app\'s counter')
      const requests = families.find((f) => f.name === 'http_requests_total')
      const ts = requests?.metric?.[0]?.counter?.createdTimestamp
      const created = ts === undefined ? NaN : (ts.seconds ?? 0) * 1000 + Math.round((ts.nanos ?? 0) / 1e6)
      t.ok(created >= t0 && created <= t1, `protobuf: created_timestamp ${created} between the request and the scrape [${t0}, ${t1}]`)
    } finally {
      await app.stop()
    }

    // Two processes sharing one directory: a scrape of either reports both.
    const shared = mkdtempSync(join(work, `mp-${kind}-`))
    const a = await start(dir, { PROMETHEUS_MULTIPROC_DIR: shared })
    const b = await start(dir, { PROMETHEUS_MULTIPROC_DIR: shared })
    try {
      await get(`${a.base}/api/dcim/devices/1`)
      await get(`${b.base}/api/dcim/devices/2`)
      const line = /^http_requests_total\{method="GET",route="\/api\/dcim\/devices\/:id",status_code="200"\} (\d+)$/m
      const jobsLine = /^app_jobs_total\{kind="device"\} (\d+)$/m
      let body = ''
      const deadline = Date.now() + 10000
      while (Date.now() < deadline) {
        body = (await get(`${a.base}/metrics`)).body
        if (line.exec(body)?.[1] === '2' && jobsLine.exec(body)?.[1] === '2') break
        await sleep(200)
      }
      t.equal(line.exec(body)?.[1], '2', 'the package\'s counter summed over the two processes')
      t.equal(jobsLine.exec(body)?.[1], '2', 'the app\'s counter summed over the two processes')
    } finally {
      await a.stop()
      await b.stop()
    }
  })
}

t.test('a project with neither client: a coded error naming both', async (t) => {
  const p = projects.none
  if (p === undefined) return
  await p.install
  t.same(['@prometheus-io/client', 'prom-client'].filter((n) => existsSync(join(p.dir, 'node_modules', n))), [], 'npm installed neither')
  writeFileSync(join(p.dir, 'check.mjs'), `import Fastify from 'fastify'
import netboxMetrics from 'fastify-netbox-metrics'
const app = Fastify()
try { await app.register(netboxMetrics, { enabled: true }); console.log('registered') } catch (err) { console.log(err.code, err.message) }
`)
  await t.test('registration throws FNM_ERR_CLIENT_MISSING', async (t) => {
    let out = ''
    try { out = run(process.execPath, ['check.mjs'], p.dir) } catch (err) { out = String((err as { stderr?: string }).stderr ?? err) }
    t.match(out, /^FNM_ERR_CLIENT_MISSING .*@prometheus-io\/client.*prom-client/)
  })
})
