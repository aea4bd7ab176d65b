/**
 * The package as a user gets it, from a fresh clone of this working tree:
 * - `npm pack` (which runs `prepare`, the build) gives a complete tarball: dist/lib and dist/hooks
 *   as .js, .d.ts and source maps that carry their sources, README, LICENSE, the docs with the
 *   operator's kit; no tests, benchmarks, fixtures, examples or their build;
 * - the tarball installed with npm into a fresh consumer project (fastify, prom-client, typescript
 *   and @types/node at this repository's lockfile versions) works from TypeScript ESM
 *   (`module: nodenext`, `strict`), TypeScript CommonJS, plain CommonJS and plain ESM: the quick
 *   start blocks of README.md and docs/getting-started.md, taken from the Markdown as written,
 *   compile, run, and their /metrics answers exactly what getting-started says it does;
 * - `npm install git+file://<clone>` builds and installs a working package too.
 * Packages come from npm's cache (`--prefer-offline`), so this needs the registry only when the
 * cache is cold.
 */
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript'
import { codeBlock, codeBlocks } from './helpers/markdown'
import { freePort, get, waitFor } from './helpers/net'

const root = resolve(__dirname, '..')
const work = mkdtempSync(join(tmpdir(), 'fnm-package-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

/** The environment for npm and the consumers: without `npm test`'s npm_* settings and tap's hooks. */
const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) =>
  !/^npm_/i.test(k) && !['NODE_OPTIONS', 'NODE_V8_COVERAGE', 'TAP', 'TAP_CHILD_ID'].includes(k) && !k.startsWith('_TAPJS') && !k.startsWith('TAP_')))

function run (cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 })
}

async function runAsync (cmd: string, args: string[], cwd: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    child.stderr.on('data', (c: Buffer) => { out += c.toString() })
    child.on('error', reject)
    child.on('close', (code) => code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited with ${String(code)}:\n${out}`)))
  })
}

const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> }
/** `name@version` as this repository's lockfile has it. */
const pinned = (name: string): string => `${name}@${lock.packages[`node_modules/${name}`].version}`

// ---- a fresh clone of the working tree (committed or not), with this checkout's node_modules ----

const clone = join(work, 'clone')
const tracked = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], root).split('\0')
  .filter((f) => f !== '' && existsSync(join(root, f)))
for (const f of tracked) {
  mkdirSync(dirname(join(clone, f)), { recursive: true })
  copyFileSync(join(root, f), join(clone, f))
}
run('git', ['init', '-q'], clone)
writeFileSync(join(work, 'files'), tracked.join('\0'))
run('git', ['add', '--pathspec-from-file', join(work, 'files'), '--pathspec-file-nul'], clone)
run('git', ['-c', 'user.name=test', '-c', 'user.email=test@localhost', 'commit', '-q', '-m', 'fresh clone'], clone)
// `npm install` in a fresh clone, minus the download: the build (`prepare`) needs only typescript
// and the types, so the clone borrows this checkout's node_modules (a symlink git does not track).
symlinkSync(join(root, 'node_modules'), join(clone, 'node_modules'), 'dir')

// `npm install git+file://…` clones, installs the dev dependencies, runs `prepare` and packs: the
// slowest step, so it starts now and is awaited by its own test below.
const gitConsumer = join(work, 'git-consumer')
mkdirSync(gitConsumer)
writeFileSync(join(gitConsumer, 'package.json'), JSON.stringify({ name: 'git-consumer', private: true }))
const gitInstall = runAsync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', `git+file://${clone}`, pinned('fastify'), pinned('prom-client')], gitConsumer)
gitInstall.catch(() => {}) // awaited below

// ---- npm pack ----

const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], clone)) as Array<{ filename: string, files: Array<{ path: string }> }>
const tarball = join(work, packed[0].filename)
const files = packed[0].files.map((f) => f.path).sort()

t.test('npm pack from a fresh clone gives a complete package', async (t) => {
  const sources = tracked.filter((f) => /^(lib|hooks)\/.+\.ts$/.test(f))
  t.ok(sources.length >= 15, `${sources.length} sources in lib/ and hooks/`)
  const expected = [
    'LICENSE', 'README.md', 'package.json',
    ...sources.flatMap((f) => { const base = 'dist/' + f.slice(0, -3); return [`${base}.js`, `${base}.d.ts`, `${base}.js.map`] }),
    ...tracked.filter((f) => f.startsWith('docs/'))
  ].sort()
  t.same(files, expected, 'exactly dist/lib, dist/hooks (js, d.ts, maps), README, LICENSE and docs/')
  for (const kit of ['docs/prometheus/prometheus.yml', 'docs/prometheus/alerting-rules.yml', 'docs/prometheus/recording-rules.yml', 'docs/prometheus/rules-test.yml', 'docs/grafana/netbox-metrics.json']) {
    t.ok(files.includes(kit), `the operator's kit: ${kit}`)
  }
  t.same(files.filter((f) => /^(test|bench|examples|dist\/(examples|test|bench))\/|fixtures|\.tsbuildinfo$/.test(f)), [], 'no tests, benchmarks, fixtures, examples')

  // The source maps carry the sources they point at, so stack traces and debuggers show them.
  const unpacked = join(work, 'unpacked')
  mkdirSync(unpacked)
  run('tar', ['xzf', tarball, '-C', unpacked], work)
  for (const f of sources) {
    const map = JSON.parse(readFileSync(join(unpacked, 'package', 'dist', f.slice(0, -3) + '.js.map'), 'utf8')) as { sources: string[], sourcesContent?: string[] }
    t.same({ sources: map.sources, content: map.sourcesContent }, { sources: [relative(dirname(join('dist', f)), f)], content: [readFileSync(join(root, f), 'utf8')] }, `${f}: map with its source`)
  }
  const pkg = JSON.parse(readFileSync(join(unpacked, 'package', 'package.json'), 'utf8')) as { license: string }
  t.equal(pkg.license, 'MIT')
  t.match(readFileSync(join(unpacked, 'package', 'LICENSE'), 'utf8'), /^MIT License/)
})

// ---- a consumer project with the tarball installed ----

const consumer = join(work, 'consumer')
mkdirSync(consumer)
writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, ...['fastify', 'prom-client', 'typescript', '@types/node'].map(pinned)], consumer)

// The quick start blocks, as written in the docs.
const readme = readFileSync(join(root, 'README.md'), 'utf8')
const gettingStarted = readFileSync(join(root, 'docs', 'getting-started.md'), 'utf8')
const blocks = {
  readme: codeBlock(readme, 'Quick start', 'ts'),
  'getting-started': codeBlock(gettingStarted, '2. Add the plugin to your app', 'ts')
}
// What getting-started says /metrics answers after one request to /api/dcim/devices/1.
const curl = codeBlocks(gettingStarted).find((b) => b.heading === '2. Add the plugin to your app' && b.code.includes('curl'))?.code ?? ''
const expectedLines = [...curl.matchAll(/^# (http_requests_total\{.*)$/gm)].map((m) => m[1])

type Flavour = 'ts-esm' | 'ts-cjs' | 'cjs' | 'esm'

/** The block's `import x from 'm'` lines, and the rest. */
function split (code: string): { imports: string[], body: string } {
  const lines = code.split('\n')
  return { imports: lines.filter((l) => l.startsWith('import ')), body: lines.filter((l) => !l.startsWith('import ')).join('\n') }
}

/**
 * The block as each kind of project holds it. ESM runs it as written; CommonJS has no top-level
 * await, so its body goes into an async function; plain JavaScript is the block with its type
 * annotations erased (TypeScript's transpileModule), and CommonJS imports with `require`, the form
 * the README gives.
 */
function source (flavour: Flavour, code: string): string {
  if (flavour === 'ts-esm') return code
  const erase = (text: string, module: ts.ModuleKind): string => ts.transpileModule(text, { compilerOptions: { target: ts.ScriptTarget.ES2022, module, verbatimModuleSyntax: false } }).outputText
  if (flavour === 'esm') return erase(code, ts.ModuleKind.ESNext)
  const { imports, body } = split(code)
  const wrapped = `async function main () {\n${body}\n}\nmain().catch((err) => { console.error(err); process.exit(1) })\n`
  if (flavour === 'ts-cjs') return `${imports.join('\n')}\n${wrapped.replace('async function main () {', 'async function main (): Promise<void> {')}`
  const requires = imports.map((l) => {
    const m = /^import (\w+) from '([^']+)'$/.exec(l)
    if (m === null) throw new Error(`not a default import: ${l}`)
    return `const ${m[1]} = require('${m[2]}')`
  })
  return erase(`${requires.join('\n')}\n${wrapped}`, ts.ModuleKind.CommonJS)
}

/** Compiled with the TypeScript ESM quick starts: the declarations type the options, `app.metrics` and `config.metrics`. */
const typesCheck = `
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
`

/**
 * A project directory for each flavour, holding both blocks. The one change: `port: 3000` reads
 * the port from QUICKSTART_PORT, a free one for each run.
 */
function project (flavour: Flavour): Record<string, string> {
  const dir = join(consumer, flavour)
  mkdirSync(dir)
  const typescript = flavour.startsWith('ts-')
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: flavour.endsWith('esm') ? 'module' : 'commonjs' }))
  const entries: Record<string, string> = {}
  for (const [name, code] of Object.entries(blocks)) {
    const text = source(flavour, code)
    if (text.split('port: 3000').length !== 2) throw new Error(`${name}: expected one "port: 3000"`)
    const file = `${name}.${typescript ? 'ts' : flavour === 'cjs' ? 'cjs' : 'mjs'}`
    writeFileSync(join(dir, file), text.replace('port: 3000', 'port: Number(process.env.QUICKSTART_PORT)'))
    entries[name] = typescript ? join(dir, 'dist', `${name}.js`) : join(dir, file)
  }
  if (flavour === 'ts-esm') writeFileSync(join(dir, 'types.ts'), typesCheck)
  if (typescript) {
    const compilerOptions = flavour === 'ts-esm'
      ? { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022' } // and no skipLibCheck: the package's declarations are checked too
      : { module: 'commonjs', moduleResolution: 'node10', target: 'es2022', esModuleInterop: true, skipLibCheck: true }
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { ...compilerOptions, strict: true, outDir: 'dist', types: ['node'] }, include: ['*.ts'] }))
  }
  return entries
}

/** Compiles a project; resolves with tsc's diagnostics ('' when it compiles). */
async function tsc (dir: string): Promise<string> {
  return await runAsync(process.execPath, [join(consumer, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], dir).catch((err: Error) => err.message)
}

const FLAVOURS = ['ts-esm', 'ts-cjs', 'cjs', 'esm'] as const
const projects = Object.fromEntries(FLAVOURS.map((f) => [f, project(f)])) as Record<Flavour, Record<string, string>>
// Both TypeScript projects compile at once, while the tests before them run.
const compiled = { 'ts-esm': tsc(join(consumer, 'ts-esm')), 'ts-cjs': tsc(join(consumer, 'ts-cjs')) }

/** Runs a quick start program, sends it the requests of getting-started, and scrapes it. */
async function exercise (t: Tap.Test, entry: string, port: number): Promise<void> {
  const child = spawn(process.execPath, [entry], { cwd: dirname(entry), env: { ...env, QUICKSTART_PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr?.on('data', (c: Buffer) => { output += c.toString() })
  const exited = new Promise((resolve) => child.on('close', resolve))
  try {
    const base = `http://127.0.0.1:${port}`
    await waitFor(`${base}/health`, child, () => output, 15000)
    t.same(await get(`${base}/api/dcim/devices/1`), { status: 200, body: '{"id":"1"}' })
    t.same(await get(`${base}/health`), { status: 200, body: 'ok' })
    const metrics = await get(`${base}/metrics`)
    t.equal(metrics.status, 200)
    const lines = metrics.body.split('\n')
    t.same(lines.filter((l) => l.startsWith('http_requests_total')), expectedLines, 'what getting-started says: one request, /health and /metrics left out')
    t.same(lines.filter((l) => l.startsWith('http_requests_received_total')), ['http_requests_received_total{method="GET"} 1'])
    t.equal(output, '', 'nothing on stdout or stderr')
  } finally {
    child.kill('SIGTERM')
    await exited
  }
}

t.test('getting-started states what /metrics answers', async (t) => {
  t.same(expectedLines, ['http_requests_total{method="GET",route="/api/dcim/devices/:id",status_code="200"} 1'])
})

for (const flavour of FLAVOURS) {
  t.test(`the quick starts in a ${flavour} project`, async (t) => {
    if (flavour === 'ts-esm' || flavour === 'ts-cjs') t.equal(await compiled[flavour], '', 'compiles under strict' + (flavour === 'ts-esm' ? ', with the declarations checks' : ''))
    for (const [name, entry] of Object.entries(projects[flavour])) {
      await t.test(name, async (t) => { await exercise(t, entry, await freePort()) })
    }
  })
}

t.test('exports: default, named, require and import', async (t) => {
  const names = 'netboxMetrics, errors, MetricsSubscriber, instrumentCache, InstrumentedCacheAdapter, PROMETHEUS_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE'
  const report = `console.log([plugin === netboxMetrics, plugin.default === plugin, typeof errors.FNM_ERR_OPTION_INVALID, typeof MetricsSubscriber, typeof instrumentCache, typeof InstrumentedCacheAdapter, PROMETHEUS_CONTENT_TYPE.split(';')[0], OPENMETRICS_CONTENT_TYPE.split(';')[0]].join(' '))`
  writeFileSync(join(consumer, 'exports.cjs'), `const plugin = require('fastify-netbox-metrics')\nconst { ${names} } = require('fastify-netbox-metrics')\n${report}\n`)
  writeFileSync(join(consumer, 'exports.mjs'), `import plugin, { ${names} } from 'fastify-netbox-metrics'\n${report}\n`)
  const expected = 'true true function function function function text/plain application/openmetrics-text\n'
  t.equal(run(process.execPath, ['exports.cjs'], consumer), expected)
  t.equal(run(process.execPath, ['exports.mjs'], consumer), expected)
})

t.test('npm install git+file://<clone> builds and installs a working package', async (t) => {
  await gitInstall
  const installed = join(gitConsumer, 'node_modules', 'fastify-netbox-metrics')
  t.same(readdirSync(installed).sort(), ['LICENSE', 'README.md', 'dist', 'docs', 'package.json'])
  writeFileSync(join(gitConsumer, 'check.cjs'), `
const Fastify = require('fastify')
const netboxMetrics = require('fastify-netbox-metrics')
;(async () => {
  const app = Fastify()
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  app.get('/x', async () => 'x')
  await app.inject('/x')
  const body = (await app.inject('/metrics')).body
  console.log(body.split('\\n').filter((l) => l.startsWith('http_requests_total')).join('\\n'))
  await app.close()
})()
`)
  t.equal(run(process.execPath, ['check.cjs'], gitConsumer), 'http_requests_total{method="GET",route="/x",status_code="200"} 1\n')
})
