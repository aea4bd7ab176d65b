'use strict'
// Draws docs/images/throughput.svg: throughput of bare Fastify, this plugin, fastify-metrics and
// the two floors (one empty hook; no hook), each as its median ratio to bare Fastify. Two panels:
// sequential alternating rounds (bench/results/http.json, with median req/s) and the same-core
// pairs of fresh processes (bench/results/paired.json), the measure that cancels the VM's drift.
const { existsSync, readFileSync, writeFileSync, mkdirSync } = require('node:fs')
const { join } = require('node:path')

const read = (name) => { const p = join(__dirname, 'results', `${name}.json`); return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : null }
const http = read('http')
const paired = read('paired')
/** A difference with its sign: +12, -3. */
const signed = (n) => (n >= 0 ? `+${n}` : String(n))
const SERVERS = [['bare', 'bare Fastify', '#9e9e9e'], ['plugin', 'fastify-netbox-metrics', '#2e7d32'], ['fastify-metrics', 'fastify-metrics', '#c62828'], ['floor', 'floor (1 empty hook)', '#90a4ae'], ['floor-nohook', 'floor (no hook)', '#cfd8dc']]
const panels = []
if (http) {
  panels.push({
    title: `Sequential alternating rounds: median of ${http.method.rounds} ratios to bare (bench/http.js)`,
    bars: SERVERS.filter(([k]) => http.medianRps[k] !== undefined).map(([k, name, color]) => [name, k === 'bare' ? 1 : http.vsBare[k].throughput.median, color, `${http.medianRps[k]} req/s`])
  })
}
if (paired) {
  panels.push({
    title: `Same core, at the same time, fresh processes: median of ${paired.method.rounds} pairs (bench/paired.js)`,
    bars: SERVERS.filter(([k]) => k === 'bare' || paired.pairs[k] !== undefined).map(([k, name, color]) => [name, k === 'bare' ? 1 : paired.pairs[k].throughputVsBare.median, color, k === 'bare' ? `${paired.pairs.plugin?.bareNsPerRequest ?? '?'} ns CPU/request` : `${signed(paired.pairs[k].nsPerRequestOverBare)} ns CPU/request`])
  })
}
const W = 760
const H = 40 + panels.reduce((h, p) => h + 40 + p.bars.length * 44, 0)
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;')
let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="14">\n<rect width="100%" height="100%" fill="white"/>\n`
let y = 10
for (const panel of panels) {
  svg += `<text x="20" y="${y + 24}" font-size="15" font-weight="bold">${esc(panel.title)}</text>\n`
  y += 34
  for (const [name, ratio, color, note] of panel.bars) {
    const w = Math.round(ratio * (W - 520))
    svg += `<text x="20" y="${y + 22}">${esc(name)}</text>\n<rect x="200" y="${y + 6}" width="${w}" height="24" fill="${color}"/>\n`
    svg += `<text x="${206 + w}" y="${y + 23}">${ratio.toFixed(3)} of bare, ${esc(note)}</text>\n`
    y += 44
  }
  y += 6
}
const m = (paired ?? http).machine
svg += `<text x="20" y="${H - 10}" font-size="11" fill="#555">${esc((paired ?? http).date.slice(0, 10))}, Node ${esc(m.node)}, ${m.cpus} CPUs, GET /item/:id (small JSON); bar length = throughput ratio to bare Fastify</text>\n</svg>\n`
mkdirSync(join(__dirname, '..', 'docs', 'images'), { recursive: true })
writeFileSync(join(__dirname, '..', 'docs', 'images', 'throughput.svg'), svg)
console.log('wrote docs/images/throughput.svg')
