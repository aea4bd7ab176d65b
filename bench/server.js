'use strict'
// One benchmark server, on PORT, route GET /item/:id.
// MODE=bare | plugin | plugin-native | plugin-nodefault | fastify-metrics | floor | floor-nohook | defaults-only | defaults-io
// (plugin-native: the plugin with nativeHistograms: true, native buckets beside the classic ones)
// PLUGIN=<directory> loads the plugin from another checkout (built), to compare two versions;
// MODE=plugin@<directory> (or plugin-native@<directory>) does the same for one server only, so
// that one paired run can hold both versions side by side (BENCH_MODES=bare,plugin,plugin@../before).
const Fastify = require('fastify')

async function main () {
  const at = /^(plugin|plugin-native|plugin-nodefault)@(.+)$/.exec(process.env.MODE || '')
  const mode = at === null ? process.env.MODE : at[1]
  const pluginDir = at === null ? process.env.PLUGIN || '..' : require('node:path').resolve(at[2])
  const plugin = () => require(pluginDir)
  const app = Fastify({ logger: false })
  if (mode === 'plugin') {
    await app.register(plugin(), { enabled: true })
  } else if (mode === 'plugin-native') {
    await app.register(plugin(), { enabled: true, nativeHistograms: true })
  } else if (mode === 'plugin-nodefault') {
    await app.register(plugin(), { enabled: true, defaultMetrics: false })
  } else if (mode === 'fastify-metrics') {
    await app.register(require('fastify-metrics'), { endpoint: '/metrics' })
  } else if (mode === 'defaults-only') {
    // prom-client's default metrics alone: they cost nothing per request (measured: 0.995 of bare).
    require('prom-client').collectDefaultMetrics()
  } else if (mode === 'defaults-io') {
    // @prometheus-io/client's default metrics alone (its event-loop utilization adds a 100 ms timer).
    require('@prometheus-io/client').collectDefaultMetrics()
  } else if (mode === 'floor' || mode === 'floor-nohook') {
    // The least any plugin that times every request must do: two clock reads, the end of the
    // response seen the cheapest way there is, from Node's finish diagnostics channel (no listener
    // per response; aborts are ignored here), and the start taken from one onRequest hook
    // ('floor') or, without any Fastify hook, from Node's `http.server.request.start` channel
    // ('floor-nohook': a plugin built this way would not know the route when a request starts,
    // see docs/performance.md). Shown beside the plugin to separate the cost of that skeleton
    // from the cost of the metrics themselves.
    const { monotonicMs: now } = require('../dist/lib/clock') // the plugin's own clock
    const dc = require('node:diagnostics_channel')
    const kStart = Symbol('start')
    let sum = 0
    if (mode === 'floor') {
      app.addHook('onRequest', (request, reply, done) => {
        reply.raw[kStart] = now()
        done()
      })
    } else {
      dc.subscribe('http.server.request.start', ({ response }) => { response[kStart] = now() })
    }
    dc.subscribe('http.server.response.finish', ({ response }) => {
      const start = response[kStart]
      if (start !== undefined) sum += now() - start
    })
    // Keeps the measurement observable, so that no compiler can drop it.
    process.on('exit', () => { if (sum < 0) console.log(sum) })
  } else if (mode !== 'bare') {
    throw new Error(`unknown MODE ${mode}`)
  }
  let served = 0
  app.get('/item/:id', async (request) => { served++; return { id: request.params.id, name: 'device', status: 'active' } })
  // CPU time per request: the parent asks for process.cpuUsage() and the count before and after a run.
  process.on('message', (m) => { if (m === 'stats') process.send({ cpu: process.cpuUsage(), served, monotonicUs: Number(process.hrtime.bigint() / 1000n) }) })
  // Allocations and garbage collection over a window (bench/alloc.js): loaded only when asked.
  process.on('message', (m) => { if (m === 'alloc-start' || m === 'alloc-stop') require('./alloc-probe')[m](() => served) })
  for (let i = 0; i < Number(process.env.EXTRA_ROUTES || 0); i++) app.get(`/extra/${i}/:id`, async () => 'x')
  await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
  // The port it listens on (PORT=0 lets the system pick a free one).
  process.send?.({ ready: true, port: app.server.address().port })
}
// Exit on SIGINT so that --cpu-prof writes its profile.
process.on('SIGINT', () => process.exit(0))
main().catch((err) => { console.error(err); process.exit(1) })
