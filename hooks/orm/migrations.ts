/**
 * The migration gauges' view of an ORM: the Migrator's read methods, run so that their
 * statements are not counted in the database families (they are the package's own, at scrape
 * time), and shared while in flight. The gauges themselves are `lib/migrations.ts`.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

/**
 * Statements the plugin itself has MikroORM send (the Migrator's queries behind the migration
 * gauges, at scrape time) are not counted: they run in this context. `internalDepth` keeps the
 * per-statement cost to one comparison while no such query is in flight.
 */
const internalQueries = new AsyncLocalStorage<true>()
let internalDepth = 0

async function internally<R> (fn: () => Promise<R>): Promise<R> {
  internalDepth++
  try {
    return await internalQueries.run(true, fn)
  } finally {
    // On Node 20 an enabled AsyncLocalStorage keeps promise hooks on for the whole process;
    // turn it off again as soon as no internal query is in flight (the next run() re-enables it).
    if (--internalDepth === 0) internalQueries.disable()
  }
}

/** True while the statement being observed is one the package itself had MikroORM send. */
export function isInternal (): boolean {
  return internalDepth > 0 && internalQueries.getStore() === true
}

type MigratorMethod = 'getExecuted' | 'getPending' | 'getExecutedMigrations' | 'getPendingMigrations'
const MIGRATOR_METHODS: readonly MigratorMethod[] = ['getExecuted', 'getPending', 'getExecutedMigrations', 'getPendingMigrations']

const quietMigrators = new WeakMap<object, Any>()

/**
 * The Migrator's read methods, run so that their statements are not counted, and shared while
 * in flight: the two gauges of one scrape (or concurrent scrapes) make one call, not two racing
 * ones (the first call creates MikroORM's migrations table; two at once can collide on it).
 */
function quietMigrator (m: Any): Any {
  if (m === undefined || m === null || typeof m !== 'object') return m
  let out = quietMigrators.get(m)
  if (out !== undefined) return out
  out = {}
  for (const name of MIGRATOR_METHODS) {
    if (typeof m[name] !== 'function') continue
    let inFlight: Promise<unknown> | undefined
    out[name] = async () => {
      if (inFlight === undefined) {
        inFlight = internally(async () => await m[name]())
        const clear = (): void => { inFlight = undefined }
        inFlight.then(clear, clear)
      }
      return await inFlight
    }
  }
  quietMigrators.set(m, out)
  return out
}

/** What `registerMigrationGauges` reads of an ORM, with the Migrator's queries kept out of the DB families. */
export function migrationView (o: Any): object {
  return {
    config: {
      getExtension: (name: string) => quietMigrator(o.config?.getExtension?.(name)),
      // The settings that tell whether the app uses migrations (MikroORM 6 without the extension).
      get: (key: string) => o.config?.get?.(key)
    },
    getMigrator: typeof o.getMigrator === 'function' ? () => quietMigrator(o.getMigrator()) : undefined
  }
}

