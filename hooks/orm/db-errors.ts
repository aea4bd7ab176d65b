/**
 * Driver errors, pure: the MikroORM exception name of a raw driver error (the `type` label of
 * `db_errors_total`), and whether an error is the server's (a SQLSTATE) or a failed connect.
 * Unit-tested in test/orm-sql.test.ts.
 */

/** The `type` of `db_errors_total` when the SQLSTATE is not one MikroORM names. */
export const UNKNOWN_DB_ERROR = 'DatabaseError'

/** PostgreSQL SQLSTATE → MikroORM exception name (PostgreSqlExceptionConverter's table, and classes). */
const PG_SQLSTATE: Readonly<Record<string, string>> = Object.freeze({
  40001: 'DeadlockException',
  '40P01': 'DeadlockException',
  23502: 'NotNullConstraintViolationException',
  23503: 'ForeignKeyConstraintViolationException',
  23505: 'UniqueConstraintViolationException',
  23514: 'CheckConstraintViolationException',
  42601: 'SyntaxErrorException',
  42702: 'NonUniqueFieldNameException',
  42703: 'InvalidFieldNameException',
  '42P01': 'TableNotFoundException',
  '42P07': 'TableExistsException',
  '55P03': 'LockWaitTimeoutException',
  25006: 'ReadOnlyException'
})
/** MySQL / MariaDB error numbers → MikroORM exception name (MySqlExceptionConverter's main cases). */
const MYSQL_ERRNO: Readonly<Record<number, string>> = Object.freeze({
  1213: 'DeadlockException',
  1205: 'LockWaitTimeoutException',
  1050: 'TableExistsException',
  1051: 'TableNotFoundException',
  1146: 'TableNotFoundException',
  1216: 'ForeignKeyConstraintViolationException',
  1217: 'ForeignKeyConstraintViolationException',
  1451: 'ForeignKeyConstraintViolationException',
  1452: 'ForeignKeyConstraintViolationException',
  1062: 'UniqueConstraintViolationException',
  1557: 'UniqueConstraintViolationException',
  1569: 'UniqueConstraintViolationException',
  1586: 'UniqueConstraintViolationException',
  1054: 'InvalidFieldNameException',
  1166: 'InvalidFieldNameException',
  1611: 'InvalidFieldNameException',
  1052: 'NonUniqueFieldNameException',
  1060: 'NonUniqueFieldNameException',
  1110: 'NonUniqueFieldNameException',
  1064: 'SyntaxErrorException',
  1149: 'SyntaxErrorException',
  1048: 'NotNullConstraintViolationException',
  1121: 'NotNullConstraintViolationException',
  1138: 'NotNullConstraintViolationException',
  1171: 'NotNullConstraintViolationException',
  1252: 'NotNullConstraintViolationException',
  1263: 'NotNullConstraintViolationException',
  1364: 'NotNullConstraintViolationException',
  1566: 'NotNullConstraintViolationException',
  3819: 'CheckConstraintViolationException',
  1044: 'ConnectionException',
  1045: 'ConnectionException',
  1046: 'ConnectionException',
  1049: 'ConnectionException',
  1095: 'ConnectionException',
  2002: 'ConnectionException',
  2005: 'ConnectionException'
})
const NETWORK_ERROR_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH'])
const CONNECT_SQLSTATES = new Set(['28000', '28P01', '3D000', '57P03', '53300'])

/**
 * The MikroORM exception name for a raw driver error, from its SQLSTATE / errno, without calling
 * MikroORM's `convertException` (which mutates the error's message).
 */
export function exceptionName (err: unknown): string {
  const e = err as { code?: unknown, errno?: unknown, sqlState?: unknown } | null
  if (e === null || typeof e !== 'object') return UNKNOWN_DB_ERROR
  const code = typeof e.code === 'string' ? e.code : typeof e.sqlState === 'string' ? e.sqlState : undefined
  if (code !== undefined) {
    const pg = PG_SQLSTATE[code]
    if (pg !== undefined) return pg
    if (NETWORK_ERROR_CODES.has(code) || code.startsWith('08') || CONNECT_SQLSTATES.has(code)) return 'ConnectionException'
    if (code.length === 5 && code.startsWith('23')) return 'ConstraintViolationException'
  }
  if (typeof e.errno === 'number') {
    const my = MYSQL_ERRNO[e.errno]
    if (my !== undefined) return my
  }
  if ((err as Error).name === 'DriverException' || (err as Error).name?.endsWith?.('Exception') === true) return (err as Error).name
  return UNKNOWN_DB_ERROR
}

/**
 * A five-character SQLSTATE (digits and upper-case letters), as PostgreSQL reports errors; Node's
 * system error codes of five letters (`EPIPE`) start with E, which no SQLSTATE class does.
 */
export function isSqlState (code: unknown): boolean {
  if (typeof code !== 'string' || code.length !== 5 || code.charCodeAt(0) === 69) return false
  for (let i = 0; i < 5; i++) {
    const c = code.charCodeAt(i)
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90))) return false
  }
  return true
}

/** A failure to open a connection (network, authentication, pool connect timeout). */
export function isConnectError (err: unknown): boolean {
  const e = err as { code?: unknown, message?: unknown } | null
  if (e === null || typeof e !== 'object') return false
  if (typeof e.code === 'string' && (NETWORK_ERROR_CODES.has(e.code) || CONNECT_SQLSTATES.has(e.code))) return true
  return typeof e.message === 'string' && /timeout exceeded when trying to connect|connection timeout/i.test(e.message)
}
