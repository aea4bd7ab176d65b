/**
 * The transaction ledger, pure: a small state machine per transaction context (the object
 * MikroORM's connection `begin()` returns and later passes to `commit()` / `rollback()`).
 *
 *   begin(ctx, parent?) ─► open ──statementFailed──► aborted (PostgreSQL: until a savepoint rollback)
 *        open/aborted ──end(commit)──► commit (or rollback when aborted: PostgreSQL answers the COMMIT with ROLLBACK)
 *        open/aborted ──end(rollback)─► rollback
 *        any ──end again──► nothing (already ended; a failed COMMIT followed by the app's rollback)
 *
 * Writes made inside a transaction are held by it and handed out only when the top-level
 * transaction commits: a savepoint (a context begun with a parent) that commits hands its writes
 * to its parent, one that rolls back drops them. Savepoints are told apart by their parent, given
 * at `begin`, so nothing depends on MikroORM's `savepointName` (absent before 6.5). A context the
 * ledger never saw begin (a transaction opened before the ORM was instrumented) is not counted.
 * No I/O; unit-tested in test/orm-ledger.test.ts.
 */
import { addWrite, mergeTally, type Tally } from './writes'

interface TxState {
  readonly parent: TxState | undefined
  readonly writes: Tally
  /**
   * On the top-level transaction: a statement in it failed and no savepoint rollback has undone
   * that since. PostgreSQL then answers COMMIT with ROLLBACK (SQLSTATE 25P02 for anything else).
   */
  aborted: boolean
}

/** What ending a transaction context means for the counters. */
export interface Ended {
  /** Set for a top-level transaction: what PostgreSQL did. Undefined for savepoints and unknown contexts. */
  readonly outcome: 'commit' | 'rollback' | undefined
  /** The writes to count now (a top-level commit), else undefined. */
  readonly writes: Tally | undefined
}

const NOTHING: Ended = Object.freeze({ outcome: undefined, writes: undefined })

function rootOf (s: TxState): TxState {
  while (s.parent !== undefined) s = s.parent
  return s
}

/** Open transactions of one ORM, keyed by their context objects (weakly: a leaked context is collected). */
export class Ledger {
  private readonly open = new WeakMap<object, TxState>()

  /** A transaction (no parent) or a savepoint in `parent` began. */
  begin (ctx: object, parent: object | undefined): void {
    const p = parent === undefined ? undefined : this.open.get(parent)
    // A savepoint of a transaction never seen: the whole tree is unknown, none of it is counted.
    if (parent !== undefined && p === undefined) return
    this.open.set(ctx, { parent: p, writes: new Map(), aborted: false })
  }

  /** True while `ctx` is a transaction or savepoint this ledger saw begin and not end. */
  has (ctx: object): boolean {
    return this.open.has(ctx)
  }

  /** Holds a write in its open transaction; false when `ctx` is not an open one (count it now). */
  hold (ctx: object, kind: number, entity: string, n: number): boolean {
    const s = this.open.get(ctx)
    if (s === undefined) return false
    addWrite(s.writes, kind, entity, n)
    return true
  }

  /** A statement in `ctx` was refused by a server that aborts the transaction on error (PostgreSQL). */
  statementFailed (ctx: object): void {
    const s = this.open.get(ctx)
    if (s !== undefined) rootOf(s).aborted = true
  }

  /** `ctx` ended: committed (its COMMIT / RELEASE succeeded) or rolled back (ROLLBACK, or a COMMIT the server refused). */
  end (ctx: object, committed: boolean): Ended {
    const s = this.open.get(ctx)
    if (s === undefined) return NOTHING
    this.open.delete(ctx)
    if (s.parent !== undefined) {
      // ROLLBACK TO SAVEPOINT undoes the failure that aborted the transaction (it happened after
      // the savepoint, or the savepoint could not have been made).
      if (committed) mergeTally(s.parent.writes, s.writes)
      else rootOf(s).aborted = false
      return NOTHING
    }
    // A COMMIT of an aborted transaction is answered with ROLLBACK: nothing of it was written.
    if (committed && !s.aborted) return { outcome: 'commit', writes: s.writes }
    return { outcome: 'rollback', writes: undefined }
  }
}
