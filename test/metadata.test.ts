import t from 'tap'
import Fastify from 'fastify'
import netboxMetrics from '../lib/index'
import { getPluginVersion } from '../lib/metadata'
import { registerMigrationGauges } from '../lib/migrations'
import { MetricSet, DEFAULT_LATENCY_BUCKETS, DEFAULT_SIZE_BUCKETS } from '../lib/metrics'
import { Registry } from 'prom-client'
import { readFileSync } from 'node:fs'

t.test('fastify_info: always 1, with the versions', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  const version = (JSON.parse(readFileSync(`${__dirname}/../package.json`, 'utf8')) as { version: string }).version
  t.equal(getPluginVersion(), version)
  const body = (await app.inject('/metrics')).body
  t.match(body, `\nfastify_info{fastify_version="${app.version}",node_version="${process.versions.node}",plugin_version="${version}"} 1\n`)
  t.match(body, '# TYPE fastify_info gauge\n')
})

t.test('default metrics: on by default, prefixed, off with defaultMetrics: false', async (t) => {
  const on = Fastify()
  const off = Fastify()
  const prefixed = Fastify()
  t.teardown(async () => { await on.close(); await off.close(); await prefixed.close() })
  await on.register(netboxMetrics, { enabled: true })
  await off.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  await prefixed.register(netboxMetrics, { enabled: true, prefix: 'app_' })
  const bOn = (await on.inject('/metrics')).body
  const bOff = (await off.inject('/metrics')).body
  const bPre = (await prefixed.inject('/metrics')).body
  t.match(bOn, /^process_cpu_user_seconds_total \d/m)
  t.match(bOn, /^nodejs_heap_size_total_bytes \d/m)
  t.notMatch(bOff, /^(process|nodejs)_/m)
  t.match(bPre, /^app_process_cpu_user_seconds_total \d/m)
  t.match(bPre, /^app_nodejs_heap_size_total_bytes \d/m)
  t.notMatch(bPre, /^(process|nodejs)_/m)
  t.match(bPre, /^app_fastify_info\{/m)
})

function metricSet (): MetricSet {
  return new MetricSet({ registry: new Registry(), prefix: '', buckets: { latency: DEFAULT_LATENCY_BUCKETS, size: DEFAULT_SIZE_BUCKETS }, maxSeriesPerMetric: 100 })
}

t.test('migration gauges: from the Migrator at scrape time, cached for the TTL, absent without one', async (t) => {
  const m = metricSet()
  let executed = ['a', 'b']
  let pending = ['c']
  let calls = 0
  const v7 = { config: { getExtension: (n: string) => n === '@mikro-orm/migrator' ? migrator : undefined } }
  const migrator = {
    async getExecuted () { calls++; return executed },
    async getPending () { return pending }
  }
  const none = { config: { getExtension: () => undefined } }
  registerMigrationGauges(m, v7, 'default', 60_000)
  registerMigrationGauges(m, none, 'other', 60_000)
  t.equal(calls, 0, 'nothing asked at registration')
  let text = await m.registry.metrics()
  t.match(text, 'db_migrations_applied{context="default"} 2\n')
  t.match(text, 'db_migrations_pending{context="default"} 1\n')
  t.notMatch(text, 'context="other"', 'no Migrator: no series')
  executed = ['a', 'b', 'c']
  pending = []
  text = await m.registry.metrics()
  t.match(text, 'db_migrations_applied{context="default"} 2\n', 'cached within the TTL')
  t.equal(calls, 1)
  // TTL 0: asked at every scrape
  const m0 = metricSet()
  registerMigrationGauges(m0, v7, 'default', 0)
  text = await m0.registry.metrics()
  t.match(text, 'db_migrations_applied{context="default"} 3\n')
  t.match(text, 'db_migrations_pending{context="default"} 0\n')
  // A failing Migrator: counted, no series, no error
  const m1 = metricSet()
  m1.get('selfErrors') // the plugin creates it at registration
  registerMigrationGauges(m1, { config: { getExtension: () => ({ getExecuted: async () => { throw new Error('db down') }, getPending: async () => [] }) } }, 'broken', 0)
  await m1.registry.metrics()
  text = await m1.registry.metrics() // the error count of one scrape shows in the next
  t.notMatch(text, 'context="broken"')
  t.match(text, /metrics_errors_total\{component="collector"\} [12]\n/, 'counted (once per family with TTL 0)')
})
