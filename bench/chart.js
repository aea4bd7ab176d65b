'use strict'
// Draws docs/images/throughput.svg from bench/results/http.json: throughput of bare
// Fastify, this plugin and fastify-metrics (and the one-hook floor when measured), with each one's
// ratio to bare.
const { readFileSync, writeFileSync, mkdirSync } = require('node:fs')
const { join } = require('node:path')

const r = JSON.parse(readFileSync(join(__dirname, 'results', 'http.json'), 'utf8'))
const bars = [
  ['bare Fastify', r.medianRps.bare, 1, '#9e9e9e'],
  ['fastify-netbox-metrics', r.medianRps.plugin, r.ratios.pluginVsBare.median, '#2e7d32'],
  ['fastify-metrics', r.medianRps['fastify-metrics'], r.ratios.fastifyMetricsVsBare?.median, '#c62828'],
  ['floor (1 empty hook)', r.medianRps.floor, r.ratios.floorVsBare?.median, '#90a4ae']
].filter((b) => b[1] !== undefined)
const W = 760
const H = 60 + bars.length * 70
// Bar length is the median of the pair-by-pair ratios to bare (the robust measure on a drifting
// machine); the median req/s of each server is printed beside it.
const max = Math.max(...bars.map((b) => b[2] ?? 1))
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;')
let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="14">\n`
svg += `<rect width="100%" height="100%" fill="white"/>\n<text x="20" y="30" font-size="16" font-weight="bold">Throughput, GET /item/:id (median of ${r.method.rounds} alternating rounds, ${esc(r.machine.loadTool)})</text>\n`
bars.forEach(([name, rps, ratio, color], i) => {
  const y = 55 + i * 70
  const w = Math.round(((ratio ?? 1) / max) * (W - 420))
  svg += `<text x="20" y="${y + 25}">${esc(name)}</text>\n`
  svg += `<rect x="200" y="${y + 8}" width="${w}" height="26" fill="${color}"/>\n`
  svg += `<text x="${205 + w}" y="${y + 27}">${ratio === undefined ? '' : `${ratio.toFixed(3)} of bare, `}${rps} req/s</text>\n`
})
svg += `<text x="20" y="${H - 10}" font-size="11" fill="#555">${esc(r.date)}, Node ${esc(r.machine.node)}, ${r.machine.cpus} CPUs; bar = median of the throughput ratios to bare Fastify, pair by pair per round</text>\n</svg>\n`
mkdirSync(join(__dirname, '..', 'docs', 'images'), { recursive: true })
writeFileSync(join(__dirname, '..', 'docs', 'images', 'throughput.svg'), svg)
console.log('wrote docs/images/throughput.svg')
