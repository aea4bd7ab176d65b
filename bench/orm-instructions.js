'use strict'
// Instructions per ORM statement, counted by valgrind's callgrind (load-independent, see
// bench/instructions.js): `em.execute('select 1')` against a real PostgreSQL (end to end: the
// client side of a round trip) and with the database call stubbed, bare and instrumented.
//
//   npm run build && DATABASE_URL=postgres://... node bench/orm-instructions.js [--n 3000] [--warmup 3000]
//   BENCH_ORM=7 (Node >= 22.17): MikroORM 7 from test/fixtures/orm7
const { execFileSync, fork } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { opt } = require('./common')

const N = opt('n', 3000)
const WARMUP = opt('warmup', 3000)
const major = process.env.BENCH_ORM === '7' ? 7 : 6

async function child () {
  const dist = process.env.BENCH_DIST || path.join(__dirname, '..', 'dist')
  const lib = require(major === 7 ? path.join(__dirname, '..', 'test', 'fixtures', 'orm7', 'node_modules', '@mikro-orm', 'postgresql') : '@mikro-orm/postgresql')
  const orm = await lib.MikroORM.init({ clientUrl: process.env.DB_URL, entities: [], discovery: { warnWhenNoEntities: false }, debug: false, allowGlobalContext: true, pool: { min: 1, max: 1 } })
  let app
  if (process.env.MODE.startsWith('instrumented')) {
    app = require('fastify')()
    await app.register(require(path.join(dist, 'lib', 'index.js')), { enabled: true, defaultMetrics: false, orm })
  }
  if (process.env.MODE.endsWith('stub')) {
    const conn = orm.em.getDriver().getConnection('write')
    const rows = [{ '?column?': 1 }]
    conn.executeQuery = async function stubbedExecuteQuery () { return rows }
  }
  const em = orm.em.fork()
  const run = async (n) => { for (let i = 0; i < n; i++) await em.execute('select 1') }
  await run(WARMUP)
  process.send('ready')
  process.once('message', async () => {
    await run(N)
    process.send('done')
    process.once('message', async () => { await app?.close(); await orm.close(true); process.exit(0) })
  })
}

async function measure (mode, url) {
  const file = path.join(os.tmpdir(), `fnm-orm-callgrind-${mode}-${process.pid}.out`)
  const c = fork(__filename, [], {
    env: { ...process.env, MODE: mode, DB_URL: url, ORM_INSTR_CHILD: '1' },
    execPath: 'valgrind',
    execArgv: ['-q', '--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes', `--callgrind-out-file=${file}`, process.execPath, '--single-threaded-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const next = () => new Promise((resolve, reject) => { c.once('message', resolve); c.once('exit', (code) => reject(new Error(`child exited ${code}`))) })
  await next()
  execFileSync('callgrind_control', ['-i', 'on', String(c.pid)], { stdio: 'pipe' })
  c.send('go')
  await next()
  execFileSync('callgrind_control', ['-i', 'off', String(c.pid)], { stdio: 'pipe' })
  execFileSync('callgrind_control', ['-d', String(c.pid)], { stdio: 'pipe' })
  c.send('stop')
  await new Promise((resolve) => c.once('exit', resolve))
  let total = 0
  for (const f of fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(path.basename(file)))) {
    const m = /^totals:\s+(\d+)/m.exec(fs.readFileSync(path.join(os.tmpdir(), f), 'utf8'))
    if (m && f.endsWith('.1-01')) total += Number(m[1])
    fs.rmSync(path.join(os.tmpdir(), f))
  }
  return total / N
}

async function main () {
  const { startDatabase } = require(path.join(__dirname, '..', 'dist', 'examples', 'db.js'))
  const db = await startDatabase()
  const out = {}
  try {
    for (const mode of (process.env.BENCH_MODES || 'bare,instrumented,bare-stub,instrumented-stub').split(',')) {
      out[mode] = Math.round(await measure(mode, db.url))
      console.log(`MikroORM ${major}: ${mode.padEnd(18)} ${out[mode].toLocaleString('en-US').padStart(9)} instructions per statement`)
    }
  } finally {
    await db.stop()
  }
  if (out.bare !== undefined && out.instrumented !== undefined) console.log(`end to end: +${out.instrumented - out.bare} instructions per statement`)
  if (out['bare-stub'] !== undefined && out['instrumented-stub'] !== undefined) console.log(`stubbed: +${out['instrumented-stub'] - out['bare-stub']} instructions per statement`)
}

if (process.env.ORM_INSTR_CHILD === '1') child().catch((err) => { console.error(err); process.exit(1) })
else main().catch((err) => { console.error(err); process.exit(1) })
