/**
 * Which metrics are the client's default metrics (lib/multiprocess/defaults.ts), by what they
 * are: those a marked collectDefaultMetrics call added, and those whose collect() (or, without
 * one, whose help text) is the client's own default-metric code, as registered by the app itself
 * through prom-client or @prometheus-io/client with any prefix. App metrics named like default
 * metrics are not default metrics.
 */
import t from 'tap'
import * as promClient from 'prom-client'
import { isDefaultMetric, markDefaultMetrics } from '../lib/multiprocess/defaults'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const ioClient = require('@prometheus-io/client') as typeof promClient

t.test('the metrics a marked collectDefaultMetrics call added', async (t) => {
  const registry = new promClient.Registry()
  const before = new promClient.Counter({ name: 'process_jobs_total', help: 'Jobs.', registers: [registry] })
  markDefaultMetrics(registry, () => { promClient.collectDefaultMetrics({ register: registry, prefix: 'marked_' }) })
  const added = registry.getMetricsAsArray().filter((m) => m !== before)
  t.ok(added.length > 10, `${added.length} default metrics`)
  t.same(added.filter((m) => !isDefaultMetric(m)).map((m) => m.name), [], 'every one of them is a default metric')
  t.equal(isDefaultMetric(before), false, 'the app counter registered before is not')
})

for (const [label, client] of [['prom-client', promClient], ['@prometheus-io/client', ioClient]] as const) {
  t.test(`default metrics the app registered itself with ${label}'s collectDefaultMetrics`, async (t) => {
    const registry = new client.Registry()
    client.collectDefaultMetrics({ register: registry, prefix: 'own_' })
    const defaults = registry.getMetricsAsArray()
    t.ok(defaults.some((m) => m.name === 'own_nodejs_gc_duration_seconds'), 'the gc histogram (no collect()) is among them')
    t.same(defaults.filter((m) => !isDefaultMetric(m)).map((m) => m.name), [], 'every one is a default metric, by its collect() or its help')
    const app = [
      new client.Counter({ name: 'process_cpu_user_seconds_total', help: 'The app\'s own, named like a default metric.', registers: [] }),
      new client.Gauge({ name: 'nodejs_heap_size_total_bytes', help: 'Computed by the app.', registers: [], collect () { this.set(1) } }),
      new client.Histogram({ name: 'process_job_seconds', help: 'Jobs.', registers: [] }),
      new client.Gauge({ name: 'nodejs_active_handles_total', help: 'An app gauge with a default metric\'s name, no collect().', registers: [] })
    ]
    t.same(app.filter((m) => isDefaultMetric(m)).map((m) => m.name), [], 'app metrics named like default metrics are the app\'s')
  })
}
