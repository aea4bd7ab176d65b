/**
 * Per-entity write tallies, pure: the write kinds (indexes of the `orm_entity_*_total` families),
 * a tally keyed by kind and entity, and the tally of a successful flush read from its unit of
 * work. Unit-tested in test/orm-ledger.test.ts.
 */

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

/** Write kinds, indexes of `WRITE_FAMILIES`. */
export const INSERT = 0
export const UPDATE = 1
export const DELETE = 2
export const UPSERT = 3
/** The MetricSet keys of the per-entity counters, by write kind. */
export const WRITE_FAMILIES = ['ormInserts', 'ormUpdates', 'ormDeletes', 'ormUpserts'] as const
const CHANGE_SET_KIND: Readonly<Record<string, number>> = Object.freeze({ create: INSERT, update: UPDATE, update_early: UPDATE, delete: DELETE, delete_early: DELETE })

/** Writes by kind and entity (the key is `kind NUL entity`). */
export type Tally = Map<string, number>

/** Adds `n` writes of one kind and entity to a tally. */
export function addWrite (tally: Tally, kind: number, entity: string, n: number): void {
  const key = `${kind}\u0000${entity}`
  tally.set(key, (tally.get(key) ?? 0) + n)
}

/** Adds every write of `from` to `to`. */
export function mergeTally (to: Tally, from: Tally): void {
  for (const [key, n] of from) to.set(key, (to.get(key) ?? 0) + n)
}

/** Calls `fn(kind, entity, n)` for each entry of a tally. */
export function forEachWrite (tally: Tally, fn: (kind: number, entity: string, n: number) => void): void {
  for (const [key, n] of tally) {
    const sep = key.indexOf('\u0000')
    fn(Number(key.slice(0, sep)), key.slice(sep + 1), n)
  }
}

/**
 * Per-entity writes of a flush that succeeded, read in `afterFlush` (before MikroORM's
 * post-commit cleanup clears them): one per change set, plus one update per entity whose change
 * set MikroORM dropped in favour of an "extra update".
 *
 * Why the extra updates: when several entities of one type change the same unique property in one
 * flush, MikroORM (6 and 7, `UnitOfWork.checkUniqueProps` / `scheduleExtraUpdate`) moves that
 * property out of every change set but the first into a deferred extra update, to avoid
 * transient unique violations; a change set left with an empty payload is dropped from
 * `getChangeSets()`, and the row is written by `commitExtraUpdates` instead. Counting change
 * sets alone read 1 for two updated entities. Extra updates of entities that keep a change set
 * (a circular foreign key fixed up after an insert, or a unique property moved out of an update
 * that changes other fields too) are the same entity's write and are not counted again; extra
 * updates without a change set (self-referencing M:N collections) write pivot rows, not the
 * entity, and are not counted.
 *
 * `changeSets` is `uow.getChangeSets()`, `extra` is `uow.getExtraUpdates()` (tuples whose first
 * element is the entity and fourth its change set), or undefined where MikroORM has none.
 */
export function flushTally (changeSets: readonly Any[], extra: Iterable<readonly Any[]> | undefined): Tally {
  const counts: Tally = new Map()
  // Tallied per metadata object first (no string built per change set: flushes can be large).
  const byMeta = new Map<Any, number[]>()
  for (let i = 0; i < changeSets.length; i++) {
    const cs = changeSets[i]
    const kind = CHANGE_SET_KIND[cs.type as string]
    if (kind === undefined) continue
    let tally = byMeta.get(cs.meta)
    if (tally === undefined) {
      tally = [0, 0, 0, 0]
      byMeta.set(cs.meta, tally)
    }
    tally[kind]++
  }
  for (const [meta, tally] of byMeta) {
    for (let kind = 0; kind < tally.length; kind++) {
      if (tally[kind] !== 0) addWrite(counts, kind, meta.className as string, tally[kind])
    }
  }
  if (extra === undefined || extra === null) return counts
  let written: Set<unknown> | undefined
  for (const [entity, , , changeSet] of extra) {
    if (changeSet === undefined || changeSet === null || entity === undefined || entity === null) continue
    if (written === undefined) written = new Set(changeSets.map((cs) => cs.entity))
    if (written.has(entity)) continue
    written.add(entity)
    const className: unknown = changeSet.meta?.className ?? entity.__meta?.className
    if (typeof className === 'string') addWrite(counts, UPDATE, className, 1)
  }
  return counts
}
