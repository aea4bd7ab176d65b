'use strict'
// Does the per-request cost grow with the number of registered routes? Runs the HTTP benchmark
// (bare vs this plugin) with 10, 1,000 and 10,000 extra routes and collects the ratios.
const { execFileSync } = require('node:child_process')
const { readFileSync, writeFileSync } = require('node:fs')
const { join } = require('node:path')

const counts = [10, 1000, 10000]
const rows = []
for (const routes of counts) {
  const out = `routes-${routes}.json`
  execFileSync(process.execPath, [join(__dirname, 'http.js'), '--routes', String(routes), '--rounds', process.env.ROUTE_ROUNDS || '5', '--seconds', '2'], { env: { ...process.env, BENCH_MODES: 'bare,plugin', BENCH_OUT: out }, stdio: ['ignore', 'ignore', 'inherit'] })
  const r = JSON.parse(readFileSync(join(__dirname, 'results', out), 'utf8'))
  rows.push({ routes, ratio: r.ratios.pluginVsBare, pluginCostNsPerRequest: r.pluginCostNsPerRequest, medianRps: r.medianRps })
}
writeFileSync(join(__dirname, 'results', 'routes.json'), JSON.stringify({ date: new Date().toISOString(), rows }, null, 2) + '\n')
console.log('| registered routes | plugin / bare throughput, median [min, max] | plugin CPU ns/request above bare, median |')
console.log('|---|---|---|')
for (const r of rows) console.log(`| ${r.routes} | ${r.ratio.median.toFixed(3)} [${r.ratio.min.toFixed(3)}, ${r.ratio.max.toFixed(3)}] | ${r.pluginCostNsPerRequest.median} |`)
