/**
 * Which Prometheus client the plugin uses (lib/client.ts): the one whose Registry made the
 * registry passed in, proved by identity with that package's own `Registry` export; otherwise
 * the one the app loaded, else `@prometheus-io/client`, else prom-client; neither: a coded error
 * naming both. Default metrics come from that same client, once, even when the app registers its
 * own after the plugin.
 */
import t from 'tap'
import Fastify from 'fastify'
import { dirname, join } from 'node:path'
import netboxMetrics from '../lib/index'
import { resolveClient } from '../lib/client'
import { FNM_ERR_CLIENT_MISSING } from '../lib/errors'
import * as promClient from 'prom-client'
import * as ioClient from '@prometheus-io/client'

const CLIENTS = { 'prom-client': promClient, '@prometheus-io/client': ioClient } as const
const mainOf = (name: string): string => require.resolve(name)
const dirOf = (name: string): string => dirname(require.resolve(`${name}/package.json`))

for (const [name, client] of Object.entries(CLIENTS)) {
  t.test(`a ${name} registry: that client, its default metrics, once`, async (t) => {
    const registry = new client.Registry()
    const app = Fastify()
    await app.register(netboxMetrics, { enabled: true, registry })
    const used = app.metrics.options.client
    t.same({ name: used.name, reason: used.reason, dir: used.dir }, { name, reason: 'registry', dir: dirOf(name) })
    t.equal(used.Registry, client.Registry, 'the client found is the module whose Registry made the registry')
    await app.ready()
    const cpu = registry.getSingleMetric('process_cpu_user_seconds_total')
    t.ok(cpu instanceof client.Counter, `default metrics made by ${name}'s own collector`)
    const other = name === 'prom-client' ? ioClient : promClient
    t.notOk(cpu instanceof other.Counter)
    const text = (await app.inject('/metrics')).body
    t.equal(text.split('\n').filter((l) => l.startsWith('# TYPE process_cpu_user_seconds_total')).length, 1)
    await app.close()
  })

  t.test(`${name}: the app's own collectDefaultMetrics before the plugin is kept, none added`, async (t) => {
    const registry = new client.Registry()
    client.collectDefaultMetrics({ register: registry })
    const mine = registry.getSingleMetric('process_cpu_user_seconds_total')
    const app = Fastify()
    await app.register(netboxMetrics, { enabled: true, registry })
    await app.ready()
    t.equal(registry.getSingleMetric('process_cpu_user_seconds_total'), mine, 'the app\'s own default metrics kept, none added')
    const text = (await app.inject('/metrics')).body
    t.equal(text.split('\n').filter((l) => l.startsWith('process_cpu_user_seconds_total ')).length, 1, 'once')
    await app.close()
  })

  t.test(`${name}: a subclass of its Registry`, async (t) => {
    class MyRegistry extends client.Registry {}
    t.equal(resolveClient(new MyRegistry()).name, name)
  })
}

t.test('without a registry: the loaded client, else @prometheus-io/client, else prom-client, else a coded error', async (t) => {
  const resolveOnly = (...names: string[]) => (n: string): string => {
    if (names.includes(n)) return mainOf(n)
    throw Object.assign(new Error(`Cannot find module '${n}'`), { code: 'MODULE_NOT_FOUND' })
  }
  const cacheWith = (...names: string[]): NodeJS.Dict<NodeJS.Module> => Object.fromEntries(names.map((n) => {
    const file = join(dirOf(n), 'lib', 'registry.js')
    return [file, require.cache[file]]
  }))
  t.same(pick(resolveClient(undefined, resolveOnly('prom-client', '@prometheus-io/client'), {})), { name: '@prometheus-io/client', reason: 'installed' }, 'both installed, none loaded: the successor')
  t.same(pick(resolveClient(undefined, resolveOnly('prom-client'), {})), { name: 'prom-client', reason: 'installed' })
  t.same(pick(resolveClient(undefined, resolveOnly('@prometheus-io/client'), {})), { name: '@prometheus-io/client', reason: 'installed' })
  t.same(pick(resolveClient(undefined, resolveOnly('prom-client', '@prometheus-io/client'), cacheWith('prom-client'))), { name: 'prom-client', reason: 'loaded' }, 'both installed, the app loaded prom-client: prom-client')
  t.same(pick(resolveClient(undefined, resolveOnly('prom-client', '@prometheus-io/client'), cacheWith('prom-client', '@prometheus-io/client'))), { name: '@prometheus-io/client', reason: 'installed' }, 'both loaded: the successor')
  t.throws(() => resolveClient(undefined, resolveOnly(), {}), { code: 'FNM_ERR_CLIENT_MISSING', message: /@prometheus-io\/client.*prom-client/ }, 'neither: a coded error naming both')
  t.ok(new FNM_ERR_CLIENT_MISSING() instanceof Error)
  // A registry whose constructor no loaded module exports (a bundled client): the installed one.
  const bundled = Object.create({ constructor: function Registry () {} }) as object
  t.same(pick(resolveClient(bundled, resolveOnly('prom-client'), {})), { name: 'prom-client', reason: 'installed' })
})

t.test('an object that is no registry is still refused', async (t) => {
  const app = Fastify()
  await t.rejects(async () => { await app.register(netboxMetrics, { enabled: true, registry: {} as never }) }, { code: 'FNM_ERR_OPTION_INVALID', message: /@prometheus-io\/client or prom-client/ })
})

function pick (c: { name: string, reason: string }): { name: string, reason: string } {
  return { name: c.name, reason: c.reason }
}
