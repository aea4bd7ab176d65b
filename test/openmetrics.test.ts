/**
 * The OpenMetrics exposition, checked by a strict parser written by others: Debian's
 * python3-prometheus-client (`prometheus_client.openmetrics.parser`), which rejects what the
 * OpenMetrics spec forbids. Every `le` and `quantile` value must also be in the canonical number
 * form the Python client itself writes (`floatToGoString`: `1.0`, `+Inf`, `1.048576e+06`).
 * Skipped with a message where the package is missing; .ci/run installs it.
 */
import t from 'tap'
import Fastify from 'fastify'
import { spawnSync } from 'node:child_process'
import { Counter, Histogram, Registry, Summary } from 'prom-client'
import netboxMetrics from '../lib/index'
import { formatCanonical } from '../lib/families'
import { DEFAULT_LATENCY_BUCKETS, DEFAULT_SIZE_BUCKETS } from '../lib/metrics'

// Debian's python3 (a pyenv python first on PATH would not see the Debian package).
const PYTHON = process.env.FNM_PYTHON ?? '/usr/bin/python3'
const PARSER = `
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString
mode = sys.argv[1]
if mode == 'canonical':
    print(json.dumps([floatToGoString(float(x)) for x in json.loads(sys.stdin.read())]))
    sys.exit(0)
families = []
uncanonical = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append([f.name, f.type, len(f.samples)])
    for s in f.samples:
        for key in ('le', 'quantile'):
            v = s.labels.get(key)
            if v is not None and v != floatToGoString(float(v)):
                uncanonical.append(s.name + ' ' + key + '=' + v)
print(json.dumps({'families': families, 'uncanonical': uncanonical}))
`
const probe = spawnSync(PYTHON, ['-c', 'import prometheus_client.openmetrics.parser'], { encoding: 'utf8' })
const noParser = probe.status === 0
  ? false
  : `Debian's python3-prometheus-client is not installed (apt-get install python3-prometheus-client); .ci/run installs it and runs this test`

function python (mode: string, input: string): any {
  const r = spawnSync(PYTHON, ['-c', PARSER, mode], { input, encoding: 'utf8', timeout: 30000 })
  if (r.status !== 0) throw new Error(`the Python OpenMetrics parser rejected the exposition:\n${r.stderr}`)
  return JSON.parse(r.stdout)
}

t.test('formatCanonical writes what the Python client writes', { skip: noParser }, async (t) => {
  const numbers = [...DEFAULT_LATENCY_BUCKETS, ...DEFAULT_SIZE_BUCKETS, 0, 1, 0.5, 0.99, 0.0001, 0.00001, 123456, 1234567, 1e21, 2 ** -128, 5e-324, 0.1 + 0.2]
  t.same(numbers.map(formatCanonical), python('canonical', JSON.stringify(numbers)))
  t.same([1, 16, 0.001, 1048576, 67108864].map(formatCanonical), ['1.0', '16.0', '0.001', '1.048576e+06', '6.7108864e+07'])
})

t.test('the OpenMetrics exposition passes the Python parser, le and quantile canonical', { skip: noParser }, async (t) => {
  const registry = new Registry()
  const jobs = new Counter({ name: 'app_jobs_total', help: 'jobs', labelNames: ['kind'], registers: [registry] })
  jobs.inc({ kind: 'a' }, 2)
  const latency = new Summary({ name: 'app_latency_seconds', help: 'a summary', percentiles: [0.01, 0.5, 1], registers: [registry] })
  latency.observe(0.2)
  const sizes = new Histogram({ name: 'app_size_bytes', help: 'a histogram', buckets: [1, 1000000], registers: [registry] })
  sizes.observe(1)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, registry, buckets: { latency: [0.5, 1, 2], size: [16, 1048576] } })
  app.get('/r', async () => 'r')
  await app.inject('/r')
  const res = await app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0' } })
  const body = res.body

  t.match(body, /^http_request_duration_seconds_bucket\{method="GET",route="\/r",status_code="200",le="1\.0"\} 1$/m)
  t.match(body, /^http_request_duration_seconds_bucket\{method="GET",route="\/r",status_code="200",le="\+Inf"\} 1$/m)
  t.match(body, /^http_response_size_bytes_bucket\{method="GET",route="\/r",le="16\.0"\} 1$/m)
  t.match(body, /^http_response_size_bytes_bucket\{method="GET",route="\/r",le="1\.048576e\+06"\} 1$/m)
  t.match(body, /^app_latency_seconds\{quantile="1\.0"\} 0\.2$/m, 'a prom-client summary: quantile canonical')
  t.match(body, /^app_size_bytes_bucket\{le="1\.0"\} 1$/m, 'a prom-client histogram: le canonical')
  t.match(body, /^app_size_bytes_bucket\{le="1e\+06"\} 1$/m)
  t.notMatch(body, /le="1"/)

  const parsed = python('parse', body)
  t.same(parsed.uncanonical, [], 'every le and quantile in canonical form')
  const byName = new Map<string, [string, number]>(parsed.families.map((f: [string, string, number]) => [f[0], [f[1], f[2]]]))
  t.same(byName.get('http_request_duration_seconds'), ['histogram', 6], 'buckets 0.5, 1, 2, +Inf, _sum, _count')
  t.same(byName.get('http_requests'), ['counter', 1])
  t.same(byName.get('app_jobs'), ['counter', 1])
  t.same(byName.get('app_latency_seconds'), ['summary', 5])

  // The Prometheus text format keeps prom-client's form, so existing series keep their labels.
  const text = (await app.inject('/metrics')).body
  t.match(text, /^http_request_duration_seconds_bucket\{method="GET",route="\/r",status_code="200",le="1"\} 1$/m)
})
