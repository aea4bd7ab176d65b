/**
 * MikroORM's result cache through `InstrumentedCacheAdapter`, against a real PostgreSQL, for one
 * MikroORM major (`lib` is that major's `@mikro-orm/postgresql`). Exact cache_* values after a
 * known sequence of `em.find(..., { cache })` calls: misses, hits, an expiry, `em.clearCache`,
 * and an adapter whose reads fail.
 */
import Fastify from 'fastify'
import netboxMetrics, { InstrumentedCacheAdapter } from '../../lib/index'
import { startDatabase } from '../../examples/db'
import { entities, sample } from './orm-suite'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

interface Expected { get: number, hits: number, misses: number, fail: number, set: number, inv: number }

function counts (body: string, cache: string): Expected {
  const v = (name: string): number => sample(body, name, { cache }) ?? NaN
  return {
    get: v('cache_get_total'),
    hits: v('cache_get_hits_total'),
    misses: v('cache_get_misses_total'),
    fail: v('cache_get_fail_total'),
    set: v('cache_set_total'),
    inv: v('cache_invalidations_total')
  }
}

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

export function cacheOrmSuite (t: Any, lib: Any): void {
  let db: { url: string, stop: () => Promise<void> }
  t.before(async () => {
    db = await startDatabase()
    const orm = await lib.MikroORM.init({ clientUrl: db.url, entities: entities(lib).schemas, allowGlobalContext: true, debug: false })
    const gen = typeof orm.getSchemaGenerator === 'function' ? orm.getSchemaGenerator() : orm.schema
    await (typeof gen.createSchema === 'function' ? gen.createSchema() : gen.create())
    await orm.em.fork().insertMany('Site', [{ name: 'a' }, { name: 'b' }, { name: 'c' }])
    await orm.close(true)
  })
  t.teardown(async () => { await db?.stop() })

  async function setup (t: Any, resultCache: Record<string, unknown>): Promise<{ orm: Any, Site: Any, scrape: () => Promise<string> }> {
    const app = Fastify()
    await app.register(netboxMetrics, { enabled: true, defaultMetrics: false })
    const orm = await lib.MikroORM.init({ clientUrl: db.url, entities: entities(lib).schemas, allowGlobalContext: true, debug: false, resultCache })
    t.teardown(async () => { await orm.close(true); await app.close() })
    return { orm, Site: orm.getMetadata().find('Site').class, scrape: async () => (await app.inject('/metrics')).body }
  }

  const variants: Array<[string, () => Record<string, unknown>]> = [
    ['default adapter (MikroORM\'s MemoryCacheAdapter)', () => ({ adapter: InstrumentedCacheAdapter, options: { name: 'orm-result' } })],
    ['explicit adapter: MemoryCacheAdapter', () => ({ adapter: InstrumentedCacheAdapter, options: { adapter: lib.MemoryCacheAdapter, name: 'orm-result' } })]
  ]
  for (const [title, config] of variants) {
    t.test(`hits, misses, expiry and em.clearCache: ${title}`, async (t: Any) => {
      const { orm, Site, scrape } = await setup(t, config())
      const em = orm.em.fork()
      // TTLs: 10 s for the entries that must be hits (a loaded machine must not expire them),
      // 100 ms for the one that must expire.
      t.equal((await em.find(Site, {}, { cache: 10_000 })).length, 3) // miss + set
      t.equal((await em.find(Site, {}, { cache: 10_000 })).length, 3) // hit
      await em.find(Site, {}, { cache: 10_000 }) // hit
      await em.find(Site, { name: 'a' }, { cache: 10_000 }) // another key: miss + set
      t.same(counts(await scrape(), 'orm-result'), { get: 4, hits: 2, misses: 2, fail: 0, set: 2, inv: 0 })

      await em.find(Site, { name: 'b' }, { cache: 100 }) // miss + set, expires in 100 ms
      await sleep(300)
      await em.find(Site, { name: 'b' }, { cache: 100 }) // expired: miss + set
      await em.find(Site, {}, { cache: 10_000 }) // still a hit
      t.same(counts(await scrape(), 'orm-result'), { get: 7, hits: 3, misses: 4, fail: 0, set: 4, inv: 0 }, 'an expired entry is a miss')

      await em.find(Site, {}, { cache: ['sites', 60_000] }) // miss + set
      await em.find(Site, {}, { cache: ['sites', 60_000] }) // hit
      await em.clearCache('sites') // invalidation
      await em.find(Site, {}, { cache: ['sites', 60_000] }) // miss + set
      t.same(counts(await scrape(), 'orm-result'), { get: 10, hits: 4, misses: 6, fail: 0, set: 6, inv: 1 }, 'em.clearCache is an invalidation')
    })
  }

  t.test('an adapter whose reads fail: the error reaches the caller and is counted', async (t: Any) => {
    class FailingAdapter {
      get (): never { throw new Error('cache down') }
      set (): void {}
      remove (): void {}
      clear (): void {}
    }
    const { orm, Site, scrape } = await setup(t, { adapter: InstrumentedCacheAdapter, options: { adapter: FailingAdapter, name: 'failing' } })
    await t.rejects(orm.em.fork().find(Site, {}, { cache: 50 }), { message: 'cache down' })
    t.same(counts(await scrape(), 'failing'), { get: 1, hits: 0, misses: 0, fail: 1, set: 0, inv: 0 })
  })
}
