/**
 * SQL statement classification, pure: the `operation` of a statement (its first keyword after
 * comments), the table a write targets, whether it is an upsert, and the rows a driver result
 * reports. No I/O; unit-tested in test/orm-sql.test.ts.
 */

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

/** The `operation` label values of `db_query_duration_seconds`, indexed by the `OP_*` constants. */
export const OPERATIONS = Object.freeze(['select', 'insert', 'update', 'delete', 'other'] as const)
export const OP_SELECT = 0
export const OP_INSERT = 1
export const OP_UPDATE = 2
export const OP_DELETE = 3
export const OP_OTHER = 4

/**
 * Index of a statement's first keyword: leading whitespace, opening parentheses and SQL comments
 * (`/* ... *\/`, nested as PostgreSQL allows, and `-- ...` to the end of the line) are skipped,
 * so hints such as MikroORM 7's `qb.comment()` do not hide what the statement does.
 */
export function keywordStart (sql: string): number {
  let i = 0
  const n = sql.length
  while (i < n) {
    const c = sql.charCodeAt(i)
    if (c === 32 || c === 9 || c === 10 || c === 13 || c === 40) {
      i++
    } else if (c === 47 && sql.charCodeAt(i + 1) === 42) { // /* ... */
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        const d = sql.charCodeAt(i)
        if (d === 42 && sql.charCodeAt(i + 1) === 47) { depth--; i += 2 } else if (d === 47 && sql.charCodeAt(i + 1) === 42) { depth++; i += 2 } else i++
      }
    } else if (c === 45 && sql.charCodeAt(i + 1) === 45) { // -- ...
      const eol = sql.indexOf('\n', i + 2)
      i = eol < 0 ? n : eol + 1
    } else {
      break
    }
  }
  return i
}

/** True when `sql` has the (lower-case ASCII) `word` at `i`, in any case; no string is built. */
function wordAt (sql: string, i: number, word: string): boolean {
  if (sql.length < i + word.length) return false
  for (let k = 0; k < word.length; k++) {
    if ((sql.charCodeAt(i + k) | 0x20) !== word.charCodeAt(k)) return false
  }
  return true
}

/** The `operation` index of a statement, from its first keyword (at `i`, see `keywordStart`). */
export function classify (sql: string, i: number): number {
  switch (sql.charCodeAt(i) | 0x20) {
    case 115: return wordAt(sql, i, 'select') ? OP_SELECT : OP_OTHER // s
    case 105: return wordAt(sql, i, 'insert') ? OP_INSERT : OP_OTHER // i
    case 117: return wordAt(sql, i, 'update') ? OP_UPDATE : OP_OTHER // u
    case 100: return wordAt(sql, i, 'delete') ? OP_DELETE : OP_OTHER // d
    case 119: return wordAt(sql, i, 'with') ? OP_SELECT : OP_OTHER // w
    default: return OP_OTHER
  }
}

const WRITE_TABLE = /^[\s(]*(?:insert\s+(?:ignore\s+)?into|update|delete\s+from)\s+((?:[`"[]?[^\s`"\].]+[`"\]]?\.)?[`"[]?([^\s`"\].(]+)[`"\]]?)/i
/** Upsert statements (counted by `afterUpsert`, or, from a QueryBuilder, not at all): `ON CONFLICT`, `ON DUPLICATE KEY`, and MySQL/MariaDB's `INSERT IGNORE` (MikroORM's upsert when there is nothing to update). */
const UPSERT_CLAUSE = /\bon\s+(?:conflict|duplicate\s+key)\b|^[\s(]*insert\s+ignore\b/i

/**
 * The table (unquoted, without schema) an INSERT / UPDATE / DELETE writes, from the statement
 * text starting at its first keyword; undefined for upserts (their effect is unknown) and for
 * anything else.
 */
export function writeTable (sql: string, op: number): string | undefined {
  const m = WRITE_TABLE.exec(sql)
  if (m === null) return undefined
  if (op === OP_INSERT && UPSERT_CLAUSE.test(sql)) return undefined
  return m[2]
}

/** The SQL text of what MikroORM hands a connection: a string, a knex builder / raw (6), a kysely compiled query (7). */
export function statementText (query: unknown): string {
  if (typeof query === 'string') return query
  const q = query as Any
  if (q === null || typeof q !== 'object') return ''
  if (typeof q.sql === 'string') return q.sql
  if (typeof q.toSQL === 'function') return String(q.toSQL().sql ?? '')
  if (typeof q.toRaw === 'function') {
    const r = q.toRaw()
    return typeof r === 'string' ? r : String(r?.sql ?? '')
  }
  return ''
}

/** Rows a driver result reports: returned rows, or `affectedRows`; 0 when it says nothing. */
export function rowsAffected (res: unknown): number {
  if (Array.isArray(res)) return res.length
  const r = res as { affectedRows?: unknown, rows?: unknown } | null
  if (r !== null && typeof r === 'object') {
    if (typeof r.affectedRows === 'number') return r.affectedRows
    if (Array.isArray(r.rows)) return r.rows.length
  }
  return 0
}
