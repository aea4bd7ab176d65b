'use strict'
// `npm run bench`: every benchmark in turn, each writing bench/results/<name>.json, then the chart
// and one combined table (bench/results/summary.json). BENCH_QUICK=1 shortens every run.
const { execFileSync } = require('node:child_process')
const { existsSync, readFileSync, writeFileSync } = require('node:fs')
const { join } = require('node:path')

const quick = process.env.BENCH_QUICK === '1'
const steps = [
  ['http.js', quick ? ['--rounds', '3', '--seconds', '2'] : []],
  ['paired.js', quick ? ['--rounds', '3', '--seconds', '2'] : []],
  ['latency.js', quick ? ['--rounds', '3', '--requests', '5000', '--warmup', '5000'] : []],
  ['instructions.js', quick ? ['--warmup', '5000', '--requests', '2000'] : []],
  ['alloc.js', quick ? ['--rounds', '1', '--seconds', '2'] : []],
  ['routes.js', []],
  ['scrape.js', []],
  ['memory.js', []],
  ['orm.js', []],
  ['multiprocess.js', []],
  ['profile.js', quick ? ['--seconds', '3'] : []]
]
for (const [file, args] of steps) {
  if (!existsSync(join(__dirname, file))) continue
  console.log(`\n## ${file}\n`)
  const env = { ...process.env, ...(quick ? { ROUTE_ROUNDS: '3', SCRAPE_ROUNDS: '3', MEMORY_REQUESTS: '200000' } : {}) }
  execFileSync(process.execPath, ['--expose-gc', join(__dirname, file), ...args], { stdio: 'inherit', env })
}
execFileSync(process.execPath, [join(__dirname, 'chart.js')], { stdio: 'inherit' })
execFileSync(process.execPath, [join(__dirname, 'report.js')], { stdio: 'inherit' })
const summary = {}
for (const name of ['http', 'paired', 'latency', 'instructions', 'alloc', 'routes', 'scrape', 'memory', 'orm', 'multiprocess', 'profile']) {
  const p = join(__dirname, 'results', `${name}.json`)
  if (existsSync(p)) summary[name] = JSON.parse(readFileSync(p, 'utf8'))
}
writeFileSync(join(__dirname, 'results', 'summary.json'), JSON.stringify(summary, null, 2) + '\n')
console.log('\nwrote bench/results/summary.json')
