/**
 * `db_migrations_applied` and `db_migrations_pending`, from MikroORM's Migrator, per ORM context.
 *
 * Computed when scraped, never at start-up (django-prometheus's start-up query broke its users'
 * CI), and cached for a TTL so frequent scrapes cost one Migrator query per TTL. A context whose
 * ORM has no Migrator has no series at all (absent, not zero, and no error): MikroORM 7 has one
 * when the `Migrator` extension is registered (`extensions: [Migrator]`, or loaded by the async
 * `MikroORM.init()`); MikroORM 6 when the extension is registered or `@mikro-orm/migrations` can
 * be loaded from the app's directory. A Migrator query that fails is counted in
 * `metrics_errors_total{component="collector"}` and leaves that context without series until a
 * later scrape succeeds. The Migrator's own calls are used (`getExecuted()`/`getPending()` in 7,
 * `getExecutedMigrations()`/`getPendingMigrations()` in 6), which ensure MikroORM's migrations
 * table exists the first time, as any call of them from the app would.
 */
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { MetricSet } from './metrics'

/** Default time a migration count is reused before the Migrator is asked again. */
export const DEFAULT_MIGRATIONS_TTL_MS = 60_000

interface MigratorLike {
  getExecuted?: () => Promise<unknown[]>
  getPending?: () => Promise<unknown[]>
  getExecutedMigrations?: () => Promise<unknown[]>
  getPendingMigrations?: () => Promise<unknown[]>
}

interface OrmLike {
  config?: { getExtension?: (name: string) => unknown }
  migrator?: unknown
  getMigrator?: () => unknown
}

interface Counts { applied: number, pending: number }

/** Whether the ORM's config names migrations that exist: a non-empty `migrationsList` or an existing folder. */
function usesMigrations (orm: OrmLike): boolean {
  const config = orm.config as { get?: (key: string) => unknown } | undefined
  const m = config?.get?.('migrations') as { migrationsList?: unknown[], path?: string, pathTs?: string } | undefined
  if (m === undefined || m === null) return false
  if (Array.isArray(m.migrationsList) && m.migrationsList.length > 0) return true
  const baseDir = (config?.get?.('baseDir') as string | undefined) ?? process.cwd()
  return [m.path, m.pathTs].some((p) => typeof p === 'string' && existsSync(resolve(baseDir, p)))
}

/** One ORM context whose migrations are counted. */
class MigrationSource {
  private cached: { at: number, value: Promise<Counts | undefined> } | undefined

  constructor (
    readonly context: string,
    private readonly orm: OrmLike,
    private readonly ttlMs: number,
    private readonly onError: (err: unknown) => void
  ) {}

  /** The Migrator, or undefined when the app has none (never throws). */
  private migrator (): MigratorLike | undefined {
    const orm = this.orm
    try {
      const registered = orm.config?.getExtension?.('@mikro-orm/migrator')
      if (registered !== undefined && registered !== null) return registered as MigratorLike
      // MikroORM 6 loads @mikro-orm/migrations on demand from the app's directory; ask only if it is
      // there and the app evidently uses migrations: the Migrator's reads create its table and
      // folder, which a scrape must not do to an app that merely has the package installed.
      if (typeof orm.getMigrator !== 'function' || !usesMigrations(orm)) return undefined
      createRequire(join(process.cwd(), 'noop.js')).resolve('@mikro-orm/migrations')
      return orm.getMigrator() as MigratorLike
    } catch {
      return undefined
    }
  }

  private async compute (): Promise<Counts | undefined> {
    const m = this.migrator()
    if (m === undefined) return undefined
    try {
      if (typeof m.getExecuted === 'function' && typeof m.getPending === 'function') {
        const executed = await m.getExecuted()
        const pending = await m.getPending()
        return { applied: executed.length, pending: pending.length }
      }
      if (typeof m.getExecutedMigrations === 'function' && typeof m.getPendingMigrations === 'function') {
        const executed = await m.getExecutedMigrations()
        const pending = await m.getPendingMigrations()
        return { applied: executed.length, pending: pending.length }
      }
      return undefined
    } catch (err) {
      this.onError(err)
      return undefined
    }
  }

  /** The counts, from the cache while younger than the TTL (concurrent scrapes share one query). */
  async read (now: number): Promise<Counts | undefined> {
    const c = this.cached
    if (c !== undefined && now - c.at < this.ttlMs) return await c.value
    const value = this.compute()
    this.cached = { at: now, value }
    return await value
  }
}

const sourcesBySet = new WeakMap<MetricSet, Map<string, MigrationSource>>()

/**
 * Registers the scrape-time migration gauges of one ORM context in `metrics`. Nothing is
 * queried now: the Migrator is asked at the first scrape and then at most once per `ttlMs`.
 * Calling it again for the same context replaces that context's source.
 * @param metrics the plugin's families
 * @param orm a MikroORM 6 or 7 instance
 * @param context the `context` label value (the ORM's context name)
 * @param ttlMs how long counts are reused, in milliseconds (0: asked at every scrape)
 */
export function registerMigrationGauges (metrics: MetricSet, orm: object, context: string, ttlMs: number = DEFAULT_MIGRATIONS_TTL_MS): void {
  let sources = sourcesBySet.get(metrics)
  if (sources === undefined) {
    const all = new Map<string, MigrationSource>()
    sources = all
    sourcesBySet.set(metrics, all)
    const collect = (which: keyof Counts) => async (family: { clear: () => void, child: (...v: string[]) => unknown }): Promise<void> => {
      const now = Date.now()
      const results = await Promise.all([...all.values()].map(async (s) => [s.context, await s.read(now)] as const))
      family.clear()
      for (const [ctx, counts] of results) {
        if (counts !== undefined) (family.child(ctx) as { set: (v: number) => void }).set(counts[which])
      }
    }
    metrics.get('migrationsApplied', collect('applied') as never)
    metrics.get('migrationsPending', collect('pending') as never)
  }
  sources.set(context, new MigrationSource(context, orm as OrmLike, ttlMs, () => {
    try { metrics.countError('collector') } catch {}
  }))
}
