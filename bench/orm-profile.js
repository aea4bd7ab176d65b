'use strict'
// Per-statement CPU cost of the ORM instrumentation end to end (real PostgreSQL round trips),
// by CPU time rather than wall time (the database runs in another process; other load on the
// machine stretches wall time, not this process's CPU time), and a CPU profile of it.
//
//   npm run build && DATABASE_URL=postgres://... node bench/orm-profile.js [--n 20000] [--rounds 5]
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/orm-profile.js --only instrumented
//   BENCH_ORM=7 (Node >= 22.17): MikroORM 7 from test/fixtures/orm7
//
// Two ORMs on one database, `bare` and `instrumented` (plugin with `{ orm }`), alternating
// rounds of N sequential `em.execute('select 1')`; prints CPU µs per statement for each round,
// the median of the paired differences and their spread.
const { join } = require('node:path')
const dist = join(__dirname, '..', 'dist')
const { startDatabase } = require(join(dist, 'examples', 'db.js'))
const netboxMetrics = require(join(dist, 'lib', 'index.js'))
const Fastify = require('fastify')
const { median, opt } = require('./common')

const N = opt('n', 20_000)
const ROUNDS = opt('rounds', 5)
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined
const major = process.env.BENCH_ORM === '7' ? 7 : 6
const lib = require(major === 7 ? join(__dirname, '..', 'test', 'fixtures', 'orm7', 'node_modules', '@mikro-orm', 'postgresql') : '@mikro-orm/postgresql')

async function run (orm) {
  const em = orm.em.fork()
  const c0 = process.cpuUsage()
  for (let i = 0; i < N; i++) await em.execute('select 1')
  const d = process.cpuUsage(c0)
  return (d.user + d.system) / N
}

async function main () {
  const db = await startDatabase()
  const init = (contextName) => lib.MikroORM.init({ clientUrl: db.url, entities: [], discovery: { warnWhenNoEntities: false }, debug: false, allowGlobalContext: true, contextName, pool: { min: 1, max: 4 } })
  const bare = await init('bare')
  const instrumented = await init('instrumented')
  const app = Fastify()
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false, orm: instrumented })
  await run(bare)
  await run(instrumented)
  const diffs = []
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ['bare', 'instrumented'] : ['instrumented', 'bare']
    const us = {}
    for (const name of order) if (only === undefined || only === name) us[name] = await run(name === 'bare' ? bare : instrumented)
    if (only === undefined) diffs.push(us.instrumented - us.bare)
    console.log(`round ${r}: ${Object.entries(us).map(([k, v]) => `${k} ${v.toFixed(2)} µs`).join(', ')}`)
  }
  if (diffs.length > 0) console.log(`instrumented - bare, CPU µs per statement: median ${median(diffs).toFixed(2)}, spread ${Math.min(...diffs).toFixed(2)} to ${Math.max(...diffs).toFixed(2)} (MikroORM ${major}, N ${N}, ${ROUNDS} rounds)`)
  await app.close()
  await bare.close(true)
  await instrumented.close(true)
  await db.stop()
}
main().catch((err) => { console.error(err); process.exit(1) })
