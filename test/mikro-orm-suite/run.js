'use strict'
// The MikroORM-suite harness (npm run test:mikro-orm-suite): runs MikroORM's own PostgreSQL tests
// (its monorepo at a tag, from the archives in ../shared/upstream/mikro-orm) twice, plain and
// instrumented (this package applied to every ORM the tests create: instrument.js, loaded from
// the runner's setup file), and compares them test by test. Every test that passes plain and does
// not pass instrumented must be in allowlist.txt with its reason; anything else fails the run. A
// difference is confirmed by running its file again, plain and instrumented, so that a test that
// is merely flaky on a busy machine does not fail the run. Failures that are the environment's
// (the same on both sides) need no entry. The run also fails when the instrumentation was not
// active (no ORM instrumented, nothing counted) or the package counted an error of its own.
//
// MikroORM 6.6.16 runs with jest on Node 20; 7.1.13 with vitest on Node >= 22.17 (the default is
// chosen by the running Node). Upstream's globalSetup never runs (v6's starts MongoDB, v7's also
// drops databases across the whole server); everything else of its config is kept.
//
// The archive is unpacked and installed (yarn at the version of its `packageManager`, from the
// npm package @yarnpkg/cli-dist, scripts disabled, the npm registry) into a cache directory keyed
// by the archive's hash: FNM_CACHE_DIR, default ~/.cache/fastify-netbox-metrics. A second run on
// the same machine reuses it; nothing outside the npm registry is reached.
//
// Usage: node test/mikro-orm-suite/run.js [--version 6.6.16|7.1.13] [--modes plain,instrumented]
//          [--files substring ...] [--prepare] [--list]
// Env: FNM_SUITE_PLUGIN (another build of the package, a checkout's directory), FNM_MIKRO_ORM_SOURCES
// (the directory of the archives), FNM_CACHE_DIR, FNM_MO_ISOLATE=0 (no private servers),
// FNM_MO_PG_BIN (the PostgreSQL binaries for them), FNM_MO_PARALLEL=1 (both modes at once).
//
// As root with `unshare`, each mode runs in a network namespace of its own with a private
// PostgreSQL on 127.0.0.1:5432 (private-pg.js): the upstream files use fixed database names and
// drop what they create, which must not happen on the machine's shared server; without that, on
// the machine's server. FNM_MO_PARALLEL=1 runs the two modes at once (each keeps one core busy),
// but the upstream tests also write into the source tree (temp/: the migration tests), so the two
// sides can then disturb each other (seen: Migrator.postgres.test.ts); one after the other is the
// default.
const { spawnSync, spawn } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const { join, relative, dirname } = require('node:path')

const ROOT = join(__dirname, '..', '..')
const HERE = __dirname
const ALLOWLIST = join(HERE, 'allowlist.txt')
const CACHE = process.env.FNM_CACHE_DIR || join(os.homedir(), '.cache', 'fastify-netbox-metrics')
const REGISTRY = 'https://registry.npmjs.org'

function parseArgs (argv) {
  const [major, minor] = process.versions.node.split('.').map(Number)
  const out = { version: major > 22 || (major === 22 && minor >= 17) ? '7.1.13' : '6.6.16', modes: ['plain', 'instrumented'], files: [], prepareOnly: false }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--version') out.version = argv[++i]
    else if (argv[i] === '--modes') out.modes = argv[++i].split(',')
    else if (argv[i] === '--files') out.files.push(argv[++i])
    else if (argv[i] === '--prepare') out.prepareOnly = true
    else if (argv[i] === '--list') out.list = true
    else throw new Error(`unknown argument ${argv[i]}`)
  }
  return out
}

/** The archive of this tag: FNM_MIKRO_ORM_SOURCES, else the shared upstream directory beside the checkout. */
function archiveOf (version) {
  const dirs = [process.env.FNM_MIKRO_ORM_SOURCES, join(ROOT, '..', 'shared', 'upstream', 'mikro-orm'), join(ROOT, '..', '..', 'shared', 'upstream', 'mikro-orm'), '/work/shared/upstream/mikro-orm']
  for (const d of dirs) {
    if (d && fs.existsSync(join(d, `mikro-orm-v${version}.tar.gz`))) return join(d, `mikro-orm-v${version}.tar.gz`)
  }
  throw new Error(`mikro-orm-suite: mikro-orm-v${version}.tar.gz not found (set FNM_MIKRO_ORM_SOURCES); looked in ${dirs.filter(Boolean).join(', ')}`)
}

function run (cmd, args, opts) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts })
  if (r.status !== 0) throw new Error(`mikro-orm-suite: ${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`)
}

/** yarn at this version, from the npm package @yarnpkg/cli-dist (corepack's download host is not reachable). */
function yarnAt (version) {
  const dir = join(CACHE, `yarn-${version}`)
  const bin = join(dir, 'package', 'bin', 'yarn.js')
  if (!fs.existsSync(bin)) {
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir, { recursive: true })
    run('npm', ['pack', '--silent', `--registry=${REGISTRY}`, `@yarnpkg/cli-dist@${version}`], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
    const tgz = fs.readdirSync(dir).find((f) => f.endsWith('.tgz'))
    run('tar', ['xzf', tgz], { cwd: dir })
  }
  return bin
}

/** Unpacks and installs the monorepo of this tag once per archive hash; returns its directory. */
function prepare (version) {
  const archive = archiveOf(version)
  const hash = crypto.createHash('sha256').update(fs.readFileSync(archive)).digest('hex').slice(0, 16)
  const base = join(CACHE, 'mikro-orm-suite')
  const dir = join(base, `v${version}-${hash}`)
  const src = join(dir, `mikro-orm-v${version}`)
  const stamp = join(dir, 'installed.json')
  if (fs.existsSync(stamp) && fs.existsSync(join(src, 'node_modules'))) return src
  fs.mkdirSync(base, { recursive: true })
  // Older installs of this tag (another archive) go: each is several hundred MB.
  for (const old of fs.readdirSync(base)) if (old.startsWith(`v${version}-`)) fs.rmSync(join(base, old), { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  const t0 = Date.now()
  run('tar', ['xzf', archive, '-C', dir])
  const pm = JSON.parse(fs.readFileSync(join(src, 'package.json'), 'utf8')).packageManager
  const yarnVersion = /^yarn@(\d+\.\d+\.\d+)/.exec(pm ?? '')?.[1]
  if (yarnVersion === undefined) throw new Error(`mikro-orm-suite: unexpected packageManager ${pm}`)
  const yarn = yarnAt(yarnVersion)
  console.log(`mikro-orm-suite: yarn ${yarnVersion} install of MikroORM ${version} into ${relative(os.homedir(), src).startsWith('..') ? src : '~/' + relative(os.homedir(), src)} (scripts disabled)`)
  const env = { ...process.env, YARN_ENABLE_SCRIPTS: '0', YARN_NPM_REGISTRY_SERVER: REGISTRY, YARN_ENABLE_TELEMETRY: '0', YARN_ENABLE_PROGRESS_BARS: '0', YARN_ENABLE_INLINE_BUILDS: '0', COREPACK_ENABLE_STRICT: '0', CI: '1' }
  delete env.NODE_OPTIONS
  const log = join(dir, 'yarn-install.log')
  const r = spawnSync(process.execPath, [yarn, 'install', '--immutable', '--mode=skip-build'], { cwd: src, env, stdio: ['ignore', fs.openSync(log, 'w'), 'inherit'] })
  if (r.status !== 0) {
    console.log(fs.readFileSync(log, 'utf8').split('\n').filter((l) => /YN0001|YN0009|YN0018|YN0028|YN0035|Error|error/.test(l)).slice(-20).join('\n'))
    throw new Error(`mikro-orm-suite: yarn install failed (${r.status ?? r.signal}); see ${log}`)
  }
  // skip-build: no install scripts, also for the packages upstream marks `built: true` (native
  // sqlite builds; the PostgreSQL tests need none). The yarn cache (zips) is not needed after.
  fs.rmSync(join(src, '.yarn', 'cache'), { recursive: true, force: true })
  fs.writeFileSync(stamp, JSON.stringify({ archive, sha256: hash, yarn: yarnVersion, seconds: Math.round((Date.now() - t0) / 1000) }) + '\n')
  console.log(`mikro-orm-suite: installed in ${Math.round((Date.now() - t0) / 1000)} s`)
  return src
}

const DRIVERS = /@mikro-orm\/(mysql|mariadb|sqlite|better-sqlite|libsql|mongodb|mssql|oracledb)\b|\b(MySqlDriver|MariaDbDriver|SqliteDriver|BetterSqliteDriver|LibSqlDriver|MongoDriver|MsSqlDriver|OracleDriver)\b|\b(driver|type): '(mysql|mariadb|sqlite|better-sqlite|libsql|mongo|mssql|oracledb)'|initORM(MySql|Sqlite|Mongo|MsSql|MariaDb|LibSql|BetterSqlite|Oracle)/
const POSTGRES = /@mikro-orm\/postgresql|PostgreSqlDriver|driver: 'postgresql'|type: 'postgresql'|initORMPostgreSql/

/** Test files that use the PostgreSQL driver and name no other (relative to the monorepo). */
function postgresFiles (src, filters) {
  const out = []
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && !p.includes(join('tests', 'deno'))) walk(p)
      } else if (e.name.endsWith('.test.ts')) {
        const text = fs.readFileSync(p, 'utf8')
        if (POSTGRES.test(text) && !DRIVERS.test(text)) out.push(relative(src, p))
      }
    }
  }
  walk(join(src, 'tests'))
  out.sort()
  return filters.length === 0 ? out : out.filter((f) => filters.some((s) => f.includes(s)))
}

/**
 * The PostgreSQL binaries for private servers (private-pg.js), or undefined when the two runs
 * must share the machine's server one after the other: not root, no `unshare -n`, no binaries,
 * or FNM_MO_ISOLATE=0.
 */
function privatePg () {
  if (process.env.FNM_MO_ISOLATE === '0' || process.getuid?.() !== 0) return undefined
  let bin = process.env.FNM_MO_PG_BIN
  if (bin === undefined) {
    const base = '/usr/lib/postgresql'
    const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => fs.existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a)) : []
    if (versions.length === 0) return undefined
    bin = join(base, versions[0], 'bin')
  }
  const probe = spawnSync('unshare', ['-n', 'ip', 'link', 'set', 'lo', 'up'], { stdio: 'ignore' })
  if (probe.status !== 0 || spawnSync('runuser', ['-u', 'postgres', '--', 'true'], { stdio: 'ignore' }).status !== 0) return undefined
  return bin
}

/** Writes the runner config beside upstream's: its config without globalSetup, our setup file last. */
function writeConfig (src, runner) {
  fs.mkdirSync(join(src, 'tests', 'fnm'), { recursive: true })
  if (runner === 'jest') {
    fs.copyFileSync(join(HERE, 'setup-jest.js'), join(src, 'tests', 'fnm', 'setup-jest.js'))
    fs.writeFileSync(join(src, 'fnm.jest.config.js'), `'use strict'
// Written by fastify-netbox-metrics' test/mikro-orm-suite/run.js: upstream's config without its
// globalSetup/globalTeardown (MongoDB), with the instrumentation's setup file when instrumented.
const base = require('./jest.config.js')
const config = { ...base }
delete config.globalSetup
delete config.globalTeardown
if (process.env.FNM_MO_MODE === 'instrumented') config.setupFilesAfterEnv = [...(base.setupFilesAfterEnv ?? []), '<rootDir>/tests/fnm/setup-jest.js']
module.exports = config
`)
    return 'fnm.jest.config.js'
  }
  fs.copyFileSync(join(HERE, 'setup-vitest.mjs'), join(src, 'tests', 'fnm', 'setup-vitest.mjs'))
  fs.writeFileSync(join(src, 'fnm.vitest.config.mts'), `// Written by fastify-netbox-metrics' test/mikro-orm-suite/run.js: upstream's config without its
// globalSetup (MongoDB, and a drop of leftover databases across the whole server), limited to the
// files in FNM_MO_FILES, with the instrumentation's setup file last when instrumented.
import { readFileSync } from 'node:fs';
import base from './vitest.config.ts';

const files: string[] = JSON.parse(readFileSync(process.env.FNM_MO_FILES!, 'utf8'));
const es = 'tests/features/decorators/es/';
const test: any = { ...base.test };
delete test.globalSetup;
if (process.env.FNM_MO_MODE === 'instrumented') test.setupFiles = [...test.setupFiles, './tests/fnm/setup-vitest.mjs'];
const none = ['fnm-no-such-file'];
test.projects = test.projects.map((p: any) => {
  const mine = files.filter(f => (p.test.name === 'es') === f.startsWith(es));
  return { ...p, test: { ...p.test, include: mine.length > 0 ? mine : none, exclude: [] } };
});
export default { ...base, test };
`)
  return 'fnm.vitest.config.mts'
}

// The runs in progress: stopped (and their private servers with them) when this process is.
const children = new Set()
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const c of children) c.kill(signal)
    process.exitCode = 1
    setTimeout(() => process.exit(1), 10000).unref()
  })
}

/**
 * Runs the files once in `mode`; resolves with { seconds, results: Map<"file › test path",
 * {file, outcome, error}>, proof: [per-file records] }.
 */
function runSuite (ctx, mode, files, label = mode) {
  const out = join(ctx.work, `results-${label}.json`)
  const log = join(ctx.work, `log-${label}.txt`)
  const proof = join(ctx.work, `proof-${label}.jsonl`)
  const list = join(ctx.work, `files-${label}.json`)
  for (const f of [out, proof]) fs.rmSync(f, { force: true })
  fs.writeFileSync(list, JSON.stringify(files))
  const env = { ...process.env, FNM_MO_MODE: mode, FNM_MO_FILES: list, FNM_MO_PROOF: proof, FNM_MO_PLUGIN: ctx.plugin, FNM_MO_INSTRUMENT: join(HERE, 'instrument.js'), NODE_ENV: 'test', FORCE_COLOR: '0' }
  delete env.NODE_OPTIONS
  // The tests must not see this project's settings.
  for (const k of Object.keys(env)) if (k.startsWith('METRICS_') || k === 'PROMETHEUS_MULTIPROC_DIR' || k === 'DATABASE_URL') delete env[k]
  const args = ctx.runner === 'jest'
    ? [join(ctx.src, 'node_modules', 'jest', 'bin', 'jest.js'), '--config', ctx.config, '--runInBand', '--ci', '--json', `--outputFile=${out}`, '--runTestsByPath', ...files]
    : [join(ctx.src, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', ctx.config, '--no-file-parallelism', '--reporter=json', `--outputFile=${out}`]
  const t0 = process.hrtime.bigint()
  return new Promise((resolve, reject) => {
    const fd = fs.openSync(log, 'w')
    if (ctx.pgBin !== undefined) env.FNM_MO_PG_BIN = ctx.pgBin
    const child = ctx.pgBin === undefined
      ? spawn(process.execPath, args, { cwd: ctx.src, env, stdio: ['ignore', fd, fd] })
      : spawn('unshare', ['-n', process.execPath, join(HERE, 'private-pg.js'), process.execPath, ...args], { cwd: ctx.src, env, stdio: ['ignore', fd, fd] })
    children.add(child)
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      children.delete(child)
      fs.closeSync(fd)
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      if (!fs.existsSync(out)) return reject(new Error(`mikro-orm-suite: ${mode} run wrote no results (exit ${code ?? signal}); see ${log}`))
      const json = JSON.parse(fs.readFileSync(out, 'utf8'))
      const results = new Map()
      const fileFailures = []
      for (const tr of json.testResults) {
        const file = relative(ctx.src, tr.name)
        if (tr.assertionResults.length === 0 && tr.status === 'failed') fileFailures.push({ file, error: (tr.message || tr.failureMessage || '').split('\n').slice(0, 3).join(' ') })
        for (const a of tr.assertionResults) {
          const outcome = a.status === 'passed' ? 'pass' : a.status === 'failed' ? 'fail' : 'skip'
          results.set(`${file} › ${[...a.ancestorTitles, a.title].join(' › ')}`, { file, outcome, error: (a.failureMessages ?? []).join(' ').split('\n')[0] })
        }
      }
      const proofs = fs.existsSync(proof) ? fs.readFileSync(proof, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []
      resolve({ seconds, results, fileFailures, proofs, files: json.testResults.length, log })
    })
  })
}

/** A directory of this invocation's results and logs (runs/<time>-<pid>); keeps the last five. */
function newWorkDir (runs) {
  fs.mkdirSync(runs, { recursive: true })
  const old = fs.readdirSync(runs).filter((d) => /^\d{4}-/.test(d)).sort()
  for (const d of old.slice(0, Math.max(0, old.length - 4))) fs.rmSync(join(runs, d), { recursive: true, force: true })
  const dir = join(runs, `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`)
  fs.mkdirSync(dir)
  return dir
}

/** allowlist.txt: `version | file | test path | why`, version being 6.6.16, 7.1.13 or both. */
function readAllowlist (version) {
  const entries = []
  fs.readFileSync(ALLOWLIST, 'utf8').split('\n').forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return
    const parts = line.split(' | ')
    if (parts.length !== 4 || parts[3].trim() === '') throw new Error(`allowlist.txt:${i + 1}: expected "version|both | file | test path | why"`)
    const v = parts[0].trim()
    if (v === 'both' || v === version) entries.push({ key: `${parts[1].trim()} › ${parts[2].trim()}`, why: parts[3].trim(), line: i + 1 })
  })
  return entries
}

/** Tests that pass plain and do not pass instrumented. */
function differences (plain, inst) {
  const out = []
  for (const [key, r] of plain.results) {
    if (r.outcome !== 'pass') continue
    const o = inst.results.get(key)
    if (o === undefined || o.outcome !== 'pass') out.push({ key, file: r.file, error: o === undefined ? 'not run (its file failed to load?)' : o.error })
  }
  return out
}

function tally (r) {
  const c = { pass: 0, fail: 0, skip: 0 }
  for (const x of r.results.values()) c[x.outcome]++
  return `${r.files} files, ${r.results.size} tests (${c.pass} passed, ${c.fail} failed, ${c.skip} skipped)${r.fileFailures.length > 0 ? `, ${r.fileFailures.length} files failed to load` : ''}`
}

/** Sums the per-file proof records; returns [text, problems]. */
function proofOf (records) {
  const t = { files: records.length, orms: 0, statements: 0, commits: 0, rollbacks: 0, dbErrors: 0, errors: 0, attachErrors: 0 }
  const problems = []
  for (const r of records) {
    for (const k of Object.keys(t)) if (k !== 'files') t[k] += r[k]
    if (r.errors - r.attachErrors > 0) problems.push(`${r.file}: the package counted ${r.errors - r.attachErrors} error(s) of its own (metrics_errors_total) while the tests ran`)
    for (const f of r.attachFailures) problems.push(`${r.file}: ${f.split('\n')[0]}`)
  }
  if (t.orms === 0 || t.statements === 0) problems.push('the instrumentation was not active: no ORM instrumented or no statement counted')
  const text = `${t.files} files reported: ${t.orms} ORMs instrumented, ${t.statements} statements counted (db_execute_total; ${t.dbErrors} failed, db_errors_total), ${t.commits} commits and ${t.rollbacks} rollbacks (db_transactions_total), package errors: ${t.errors - t.attachErrors} while the tests ran, ${t.attachErrors} at attach (metrics_errors_total)`
  return [text, problems]
}

async function main () {
  const { version, modes, files: filters, prepareOnly, list } = parseArgs(process.argv.slice(2))
  const src = prepare(version)
  if (prepareOnly) return
  const runner = fs.existsSync(join(src, 'jest.config.js')) ? 'jest' : 'vitest'
  const plugin = require.resolve(process.env.FNM_SUITE_PLUGIN || ROOT)
  const ctx = { src, runner, plugin, config: writeConfig(src, runner), work: newWorkDir(join(dirname(src), 'runs')), pgBin: privatePg() }
  const files = postgresFiles(src, filters)
  if (list) return console.log(files.join('\n'))
  console.log(`mikro-orm-suite: MikroORM ${version} (${runner}), Node ${process.version}, ${files.length} PostgreSQL test files, package ${relative(ROOT, plugin) || plugin}, modes ${modes.join(', ')}`)
  const parallel = ctx.pgBin !== undefined && process.env.FNM_MO_PARALLEL === '1'
  console.log(ctx.pgBin !== undefined
    ? `mikro-orm-suite: each mode runs in a network namespace with a PostgreSQL of its own on 127.0.0.1:5432 (${ctx.pgBin}), ${parallel ? 'at once (FNM_MO_PARALLEL=1)' : 'one after the other'}`
    : 'mikro-orm-suite: the modes run one after the other on the PostgreSQL at 127.0.0.1:5432 (no unshare -n or PostgreSQL binaries for private servers)')
  const runs = {}
  const runMode = async (mode) => {
    runs[mode] = await runSuite(ctx, mode, files)
    console.log(`mikro-orm-suite: ${mode}: ${runs[mode].seconds.toFixed(0)} s, ${tally(runs[mode])} (log: ${runs[mode].log})`)
  }
  if (parallel) await Promise.all(modes.map(runMode))
  else for (const mode of modes) await runMode(mode)
  let failed = false
  if (runs.instrumented !== undefined) {
    const [text, problems] = proofOf(runs.instrumented.proofs)
    console.log(`mikro-orm-suite: instrumented: ${text}`)
    for (const p of problems) console.log(`  PROOF ${p}`)
    if (problems.length > 0) failed = true
  }
  if (runs.plain !== undefined && runs.instrumented !== undefined) {
    let diffs = differences(runs.plain, runs.instrumented)
    const again = [...new Set(diffs.map((d) => d.file))]
    if (again.length > 0) {
      console.log(`mikro-orm-suite: confirming ${diffs.length} difference(s) in ${again.length} file(s): running them again`)
      const [plain2, inst2] = parallel
        ? await Promise.all([runSuite(ctx, 'plain', again, 'plain-again'), runSuite(ctx, 'instrumented', again, 'instrumented-again')])
        : [await runSuite(ctx, 'plain', again, 'plain-again'), await runSuite(ctx, 'instrumented', again, 'instrumented-again')]
      diffs = diffs.filter((d) => plain2.results.get(d.key)?.outcome === 'pass' && inst2.results.get(d.key)?.outcome !== 'pass')
    }
    const allowlist = readAllowlist(version)
    const unexplained = diffs.filter((d) => !allowlist.some((e) => e.key === d.key))
    const stale = allowlist.filter((e) => !diffs.some((d) => d.key === e.key) && (filters.length === 0 || runs.plain.results.has(e.key)))
    const envOnly = [...runs.plain.results].filter(([k, r]) => r.outcome === 'fail' && runs.instrumented.results.get(k)?.outcome === 'fail').length
    const better = [...runs.plain.results].filter(([k, r]) => r.outcome === 'fail' && runs.instrumented.results.get(k)?.outcome === 'pass').map(([k]) => k)
    console.log(`mikro-orm-suite: ${diffs.length} test(s) pass plain and not instrumented, ${diffs.length - unexplained.length} of them allowlisted; ${envOnly} fail on both sides (the environment's)`)
    for (const f of runs.plain.fileFailures) console.log(`  note: failed to load on the plain side too: ${f.file}`)
    for (const k of better) console.log(`  note: failed plain, passed instrumented (flaky?): ${k}`)
    for (const d of unexplained) console.log(`  NOT ALLOWED ${version} | ${d.key}\n      ${d.error}`)
    for (const e of stale) console.log(`  note: allowlist.txt:${e.line} did not differ this run: ${e.key}`)
    if (unexplained.length > 0) failed = true
  }
  console.log(`mikro-orm-suite: ${failed ? 'FAILED' : 'passed'} (${relative(ROOT, ALLOWLIST)} lists the allowed differences)`)
  if (failed) process.exitCode = 1
}

main().catch((err) => { console.error(err); process.exitCode = 1 })
