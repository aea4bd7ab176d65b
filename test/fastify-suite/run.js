'use strict'
// The Fastify-suite harness (npm run test:fastify-suite): runs the installed Fastify's own unit
// tests (node_modules/fastify/test, with borp on node:test, as Fastify's `npm run unit` does)
// three times: plain, with this plugin registered on every instance (register), and with it fully
// applied to every instance right after creation (applied; preload.js). Every test that passes
// plain and does not pass with the plugin must be listed in allowlist.txt with the reason it is
// inherent to having any plugin installed; anything else fails the run. A difference is confirmed
// by running its file again, plain and with the plugin, so that a test that is merely flaky on a
// busy machine does not fail the run.
//
// Fastify's test dependencies are pinned in test/fastify-suite/package.json and its lockfile and
// installed with `npm ci` into .fastify-suite/ (git-ignored), never into the project's
// node_modules. Fastify itself is copied there from node_modules/fastify, so that its tests
// resolve those dependencies first and nothing is written into node_modules.
//
// Usage: node test/fastify-suite/run.js [--modes plain,register,applied] [--files glob ...]
// Env: FNM_SUITE_CONCURRENCY (borp's --concurrency, default 2), FNM_SUITE_TIMEOUT (ms per test),
// FNM_SUITE_PLUGIN (another build of the package to install instead, e.g. an older checkout).
const { spawnSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const { join, relative } = require('node:path')

const ROOT = join(__dirname, '..', '..')
const HERE = __dirname
const WORK = join(ROOT, '.fastify-suite')
const FASTIFY = join(WORK, 'fastify')
const ALLOWLIST = join(HERE, 'allowlist.txt')
const MODES = ['register', 'applied']

function parseArgs (argv) {
  const out = { modes: ['plain', ...MODES], files: [] }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--modes') out.modes = argv[++i].split(',')
    else if (argv[i] === '--files') out.files.push(argv[++i])
    else throw new Error(`unknown argument ${argv[i]}`)
  }
  return out
}

/** Installs the pinned test dependencies into .fastify-suite/ when they changed, and copies Fastify. */
function prepare () {
  fs.mkdirSync(WORK, { recursive: true })
  const stamp = join(WORK, 'installed.json')
  const wanted = ['package.json', 'package-lock.json'].map((f) => fs.readFileSync(join(HERE, f), 'utf8')).join('\n')
  if (!fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== wanted || !fs.existsSync(join(WORK, 'node_modules', 'borp'))) {
    for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(join(HERE, f), join(WORK, f))
    console.log('fastify-suite: npm ci of the pinned test dependencies into .fastify-suite/')
    const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error', '--engine-strict=false'], { cwd: WORK, stdio: 'inherit' })
    if (r.status !== 0) throw new Error('npm ci failed in .fastify-suite/')
    fs.writeFileSync(stamp, wanted)
  }
  const source = join(ROOT, 'node_modules', 'fastify')
  fs.rmSync(FASTIFY, { recursive: true, force: true })
  fs.cpSync(source, FASTIFY, { recursive: true, filter: (src) => !src.startsWith(join(source, 'node_modules')) })
  return JSON.parse(fs.readFileSync(join(FASTIFY, 'package.json'), 'utf8')).version
}

/** The test files of Fastify's own `npm run unit` (its .borp.yaml), unless the command line names some. */
function suiteFiles (files) {
  if (files.length > 0) return files
  return require('yaml').parse(fs.readFileSync(join(FASTIFY, '.borp.yaml'), 'utf8')).files
}

/** Runs borp once in FASTIFY; resolves with { seconds, results: Map<"file › path", {outcome, error}> }. */
function runSuite (mode, files, label = mode) {
  const out = join(WORK, `results-${label}.jsonl`)
  const args = [join(WORK, 'node_modules', 'borp', 'borp.js'),
    '--reporter', `${join(HERE, 'reporter.mjs')}:${out}`,
    '--reporter', 'dot',
    '--concurrency', process.env.FNM_SUITE_CONCURRENCY || '2',
    '--timeout', process.env.FNM_SUITE_TIMEOUT || '30000',
    ...suiteFiles(files)]
  // The files are given explicitly: borp would otherwise add .borp.yaml's to any list.
  const env = { ...process.env, FNM_SUITE_MODE: mode, FNM_SUITE_FASTIFY: FASTIFY, BORP_CONF_FILE: join(WORK, 'no-borp-config'), NODE_ENV: 'test' }
  delete env.NODE_OPTIONS
  if (mode !== 'plain') env.NODE_OPTIONS = `--require ${join(HERE, 'preload.js')}`
  // Tests must not see this project's DATABASE_URL or METRICS_* settings.
  for (const k of Object.keys(env)) if (k.startsWith('METRICS_') || k === 'PROMETHEUS_MULTIPROC_DIR') delete env[k]
  const t0 = process.hrtime.bigint()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: FASTIFY, env, stdio: ['ignore', 'ignore', 'inherit'] })
    child.on('error', reject)
    child.on('exit', () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      const results = new Map()
      const text = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : ''
      for (const line of text.split('\n')) {
        if (line === '') continue
        const r = JSON.parse(line)
        results.set(`${r.file} › ${r.path}`, { file: r.file, outcome: r.outcome, error: r.error })
      }
      resolve({ seconds, results })
    })
  })
}

/** allowlist.txt: `modes | file | test path | why`, modes being register, applied or both. */
function readAllowlist () {
  const entries = []
  const lines = fs.readFileSync(ALLOWLIST, 'utf8').split('\n')
  lines.forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return
    const parts = line.split(' | ')
    if (parts.length !== 4 || !['register', 'applied', 'both'].includes(parts[0].trim()) || parts[3].trim() === '') {
      throw new Error(`allowlist.txt:${i + 1}: expected "register|applied|both | file | test path | why"`)
    }
    const modes = parts[0].trim() === 'both' ? MODES : [parts[0].trim()]
    entries.push({ modes, key: `${parts[1].trim()} › ${parts[2].trim()}`, why: parts[3].trim(), line: i + 1 })
  })
  return entries
}

/** Tests that pass plain and do not pass in `withPlugin`. */
function differences (plain, withPlugin) {
  const out = []
  for (const [key, r] of plain.results) {
    if (r.outcome !== 'pass') continue
    const o = withPlugin.results.get(key)
    if (o === undefined || o.outcome === 'fail') out.push({ key, file: r.file, error: o === undefined ? 'not run (its file stopped early?)' : o.error })
  }
  return out
}

async function main () {
  const { modes, files } = parseArgs(process.argv.slice(2))
  const version = prepare()
  console.log(`fastify-suite: Fastify ${version}, Node ${process.version}, modes ${modes.join(', ')}`)
  const runs = {}
  for (const mode of modes) {
    runs[mode] = await runSuite(mode, files)
    const counts = {}
    for (const r of runs[mode].results.values()) counts[r.outcome] = (counts[r.outcome] ?? 0) + 1
    console.log(`fastify-suite: ${mode}: ${runs[mode].seconds.toFixed(0)} s, ${JSON.stringify(counts)}`)
  }
  if (runs.plain === undefined) return
  const allowlist = readAllowlist()
  let failed = false
  for (const mode of modes.filter((m) => m !== 'plain')) {
    let diffs = differences(runs.plain, runs[mode])
    // Confirm: run each differing file again, plain and with the plugin; a test counts only if it
    // passes plain and fails with the plugin again.
    const again = [...new Set(diffs.map((d) => d.file))]
    if (again.length > 0) {
      const [plain2, mode2] = [await runSuite('plain', again, `plain-again-${mode}`), await runSuite(mode, again, `${mode}-again`)]
      diffs = diffs.filter((d) => plain2.results.get(d.key)?.outcome === 'pass' && mode2.results.get(d.key)?.outcome !== 'pass')
    }
    const allowed = allowlist.filter((e) => e.modes.includes(mode))
    const unexplained = diffs.filter((d) => !allowed.some((e) => e.key === d.key))
    const stale = allowed.filter((e) => !diffs.some((d) => d.key === e.key) && (files.length === 0 || runs.plain.results.has(e.key)))
    console.log(`fastify-suite: ${mode}: ${diffs.length} tests pass plain and fail with the plugin, ${diffs.length - unexplained.length} of them allowlisted`)
    for (const d of unexplained) console.log(`  NOT ALLOWED ${mode} | ${d.key}\n      ${d.error}`)
    for (const e of stale) console.log(`  note: allowlist.txt:${e.line} (${mode}) did not differ this run: ${e.key}`)
    if (unexplained.length > 0) failed = true
  }
  console.log(`fastify-suite: ${failed ? 'FAILED' : 'passed'} (${relative(ROOT, ALLOWLIST)} lists the inherent differences)`)
  if (failed) process.exitCode = 1
}

main().catch((err) => { console.error(err); process.exitCode = 1 })
