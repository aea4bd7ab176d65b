import t from 'tap'
import Fastify from 'fastify'
import { createClient } from 'redis'
import netboxMetrics from '../lib/index'

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

t.test('a real Redis client (node-redis 5) used as a cache', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
  const raw = createClient({ url })
  const client = app.metrics.instrumentCache(raw, { name: 'lookups' })
  t.equal(await client.connect(), client, 'connect() returns the wrapper')
  const p = `fnm-test:${process.pid}:${Date.now()}:`
  t.teardown(async () => {
    const keys = await raw.keys(`${p}*`)
    if (keys.length > 0) await raw.del(keys)
    raw.destroy()
  })
  t.equal(await client.get(`${p}a`), null) // miss
  t.equal(await client.set(`${p}a`, '1'), 'OK')
  await client.setEx(`${p}b`, 60, '2')
  t.equal(await client.GET(`${p}a`), '1') // hit (upper-case alias)
  t.same(await client.mGet([`${p}a`, `${p}b`, `${p}c`]), ['1', '2', null]) // 2 hits, 1 miss
  t.equal(await client.getDel(`${p}b`), '2') // hit and 1 invalidation
  t.equal(await client.del([`${p}a`, `${p}zz`]), 1) // 2 invalidations (keys named)
  await client.hSet(`${p}h`, 'f', 'v') // not a cache command: passes through, uncounted
  await t.rejects(client.get(`${p}h`), /WRONGTYPE/, 'the Redis error reaches the caller')
  t.equal(await client.exists(`${p}h`), 1)
  const body = (await app.inject('/metrics')).body
  const got = body.split('\n').filter((l) => l.startsWith('cache_') && l.includes('cache="lookups"'))
  t.same(got, [
    'cache_get_total{cache="lookups"} 7',
    'cache_get_hits_total{cache="lookups"} 4',
    'cache_get_misses_total{cache="lookups"} 2',
    'cache_get_fail_total{cache="lookups"} 1',
    'cache_set_total{cache="lookups"} 2',
    'cache_invalidations_total{cache="lookups"} 3'
  ])
})
