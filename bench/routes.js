'use strict'
// Does the per-request cost grow with the number of registered routes? Measures bare Fastify vs
// this plugin the same-core way (bench/paired.js: fresh processes side by side, CPU per request)
// with 10, 1,000 and 10,000 extra routes registered on both, and collects the ratios.
const { execFileSync } = require('node:child_process')
const { readFileSync, writeFileSync } = require('node:fs')
const { join } = require('node:path')

const counts = [10, 1000, 10000]
const rows = []
for (const routes of counts) {
  const out = join(__dirname, 'results', `routes-${routes}.json`)
  execFileSync(process.execPath, [join(__dirname, 'paired.js'), '--rounds', process.env.ROUTE_ROUNDS || '9'], { env: { ...process.env, EXTRA_ROUTES: String(routes), BENCH_MODES: 'plugin', BENCH_OUT: out }, stdio: ['ignore', 'ignore', 'inherit'] })
  const plugin = JSON.parse(readFileSync(out, 'utf8')).pairs.plugin
  rows.push({ routes, ratio: plugin.throughputVsBare, nsPerRequestOverBare: plugin.nsPerRequestOverBare, bareNsPerRequest: plugin.bareNsPerRequest })
}
writeFileSync(join(__dirname, 'results', 'routes.json'), JSON.stringify({ date: new Date().toISOString(), method: 'bench/paired.js, BENCH_MODES=plugin, EXTRA_ROUTES=<count>', rows }, null, 2) + '\n')
console.log('| registered routes | plugin / bare throughput (same core, same time), median [min, max] | plugin CPU ns/request above bare, median |')
console.log('|---|---|---|')
for (const r of rows) console.log(`| ${r.routes} | ${r.ratio.median.toFixed(3)} [${r.ratio.min.toFixed(3)}, ${r.ratio.max.toFixed(3)}] | ${r.nsPerRequestOverBare} |`)
