import t from 'tap'
import { Gauge, Registry } from 'prom-client'
import { MetricSet } from '../lib/metrics'
import { renderRegistry } from '../lib/exposition'
import { classify, keywordStart, OPERATIONS, rowsAffected, statementText, writeTable } from '../hooks/orm/sql'
import { exceptionName, isConnectError, isSqlState } from '../hooks/orm/db-errors'
import { Ledger } from '../hooks/orm/ledger'
import { DELETE, flushTally, forEachWrite, INSERT, UPDATE, type Tally } from '../hooks/orm/writes'
import { collectPools, type PoolSource } from '../hooks/orm/pools'

// The pure modules of hooks/orm/, without a database.

const op = (sql: string): string => OPERATIONS[classify(sql, keywordStart(sql))]
const list = (tally: Tally | undefined): string[] => {
  const out: string[] = []
  if (tally !== undefined) forEachWrite(tally, (kind, entity, n) => out.push(`${kind}:${entity}:${n}`))
  return out.sort()
}

t.test('sql: operation from the first keyword after comments and parentheses', async (t) => {
  t.equal(op('select 1'), 'select')
  t.equal(op('  (SELECT 1) union (select 2)'), 'select')
  t.equal(op('with x as (select 1) select * from x'), 'select')
  t.equal(op('/* a /* nested */ hint */ INSERT into t values (1)'), 'insert')
  t.equal(op('-- line\nupdate t set a = 1'), 'update')
  t.equal(op('delete from t'), 'delete')
  t.equal(op('create table t (a int)'), 'other')
  t.equal(op('/* unterminated'), 'other')
  t.equal(op(''), 'other')
})

t.test('sql: the table a write targets; upserts and others have none', async (t) => {
  const table = (sql: string): string | undefined => writeTable(sql.slice(keywordStart(sql)), classify(sql, keywordStart(sql)))
  t.equal(table('insert into "site" ("name") values ($1)'), 'site')
  t.equal(table('insert into "public"."site" ("name") values ($1)'), 'site')
  t.equal(table('update `db`.`device` set a = 1'), 'device')
  t.equal(table('delete from iface where id = 1'), 'iface')
  t.equal(table('insert ignore into site values (1)'), undefined)
  t.equal(table('insert into site (name) values (1) on conflict (name) do nothing'), undefined)
  t.equal(table('insert into site (name) values (1) on duplicate key update name = 1'), undefined)
  t.equal(table('select * from site'), undefined)
})

t.test('sql: statement text and rows affected of the drivers\' shapes', async (t) => {
  t.equal(statementText('select 1'), 'select 1')
  t.equal(statementText({ sql: 'select 2' }), 'select 2')
  t.equal(statementText({ toSQL: () => ({ sql: 'select 3' }) }), 'select 3')
  t.equal(statementText({ toRaw: () => 'select 4' }), 'select 4')
  t.equal(statementText({ toRaw: () => ({ sql: 'select 5' }) }), 'select 5')
  t.equal(statementText(null), '')
  t.equal(statementText(42), '')
  t.equal(rowsAffected([1, 2]), 2)
  t.equal(rowsAffected({ affectedRows: 3 }), 3)
  t.equal(rowsAffected({ rows: [1] }), 1)
  t.equal(rowsAffected(undefined), 0)
})

t.test('db-errors: exception names, SQLSTATEs, connect failures', async (t) => {
  t.equal(exceptionName({ code: '23505' }), 'UniqueConstraintViolationException')
  t.equal(exceptionName({ code: '23P01' }), 'ConstraintViolationException')
  t.equal(exceptionName({ code: '08006' }), 'ConnectionException')
  t.equal(exceptionName({ errno: 1062 }), 'UniqueConstraintViolationException')
  t.equal(exceptionName(Object.assign(new Error('x'), { name: 'DriverException' })), 'DriverException')
  t.equal(exceptionName(new Error('x')), 'DatabaseError')
  t.equal(exceptionName(null), 'DatabaseError')
  t.ok(isSqlState('23503'))
  t.ok(isSqlState('40P01'))
  t.notOk(isSqlState('EPIPE'))
  t.notOk(isSqlState('2350'))
  t.notOk(isSqlState('2350a'))
  t.ok(isConnectError({ code: 'ECONNREFUSED' }))
  t.ok(isConnectError(new Error('timeout exceeded when trying to connect')))
  t.notOk(isConnectError({ code: '23505' }))
})

t.test('ledger: writes held until the top-level commit; savepoints by parent, not by name', async (t) => {
  const l = new Ledger()
  const root = {}
  const sp1 = {}
  const sp2 = {}
  l.begin(root, undefined)
  t.ok(l.hold(root, INSERT, 'Site', 1))
  l.begin(sp1, root)
  t.ok(l.hold(sp1, INSERT, 'Site', 1))
  t.same(l.end(sp1, false), { outcome: undefined, writes: undefined }, 'a savepoint rollback drops its writes')
  l.begin(sp2, root)
  t.ok(l.hold(sp2, UPDATE, 'Device', 2))
  t.same(l.end(sp2, true), { outcome: undefined, writes: undefined }, 'a savepoint release hands its writes up')
  const done = l.end(root, true)
  t.equal(done.outcome, 'commit')
  t.same(list(done.writes), ['0:Site:1', '1:Device:2'])
  t.same(l.end(root, false), { outcome: undefined, writes: undefined }, 'ending twice counts nothing (a failed COMMIT, then the app\'s rollback)')
  t.notOk(l.hold(root, INSERT, 'Site', 1), 'after the end: counted directly')
})

t.test('ledger: an aborted transaction commits as a rollback unless a savepoint rollback undid the failure', async (t) => {
  const l = new Ledger()
  const a = {}
  l.begin(a, undefined)
  l.hold(a, INSERT, 'Site', 1)
  l.statementFailed(a)
  t.same(l.end(a, true), { outcome: 'rollback', writes: undefined })
  const b = {}
  const sp = {}
  l.begin(b, undefined)
  l.begin(sp, b)
  l.statementFailed(sp)
  l.end(sp, false)
  l.hold(b, DELETE, 'Iface', 1)
  t.same(list(l.end(b, true).writes), ['2:Iface:1'])
})

t.test('ledger: contexts never seen begin are not counted, nor their savepoints', async (t) => {
  const l = new Ledger()
  const unknown = {}
  const sp = {}
  l.begin(sp, unknown)
  t.notOk(l.has(sp))
  t.same(l.end(unknown, true), { outcome: undefined, writes: undefined })
  t.same(l.end(sp, true), { outcome: undefined, writes: undefined })
})

t.test('writes: flush tally from change sets and extra updates', async (t) => {
  const site = { className: 'Site' }
  const device = { className: 'Device' }
  const e1 = {}
  const e2 = {}
  const e3 = {}
  const changeSets = [
    { type: 'create', meta: site, entity: e1 },
    { type: 'update', meta: site, entity: e2 },
    { type: 'delete_early', meta: device, entity: {} },
    { type: 'unknown', meta: device, entity: {} }
  ]
  const extra = [
    [e2, 'name', 'x', { meta: site }], // has a change set: the same write
    [e3, 'name', 'y', { meta: site }], // its change set was dropped: one more update
    [e3, 'name', 'y', { meta: site }], // once per entity
    [{}, 'tags', [], undefined] // pivot rows: not an entity write
  ]
  t.same(list(flushTally(changeSets, extra)), ['0:Site:1', '1:Site:2', '2:Device:1'])
  t.same(list(flushTally([], undefined)), [])
})

t.test('pools: a scrape whose pool collector awaits never leaves another scrape without the gauges', async (t) => {
  const registry = new Registry()
  const metrics = new MetricSet({ registry, prefix: '', buckets: { latency: [1], size: [1] }, maxSeriesPerMetric: 100 })
  const gate = (): { wait: Promise<void>, open: () => void } => {
    let open: () => void = () => {}
    const wait = new Promise<void>((resolve) => { open = resolve })
    return { wait, open }
  }
  const poolGate = gate()
  const otherGate = gate()
  let poolCalls = 0
  let otherCalls = 0
  const source: PoolSource = {
    context: 'default',
    vendor: 'postgresql',
    version: '7.2.1',
    servesPools: true,
    pools: {
      stats: async () => {
        // The second scrape's pool read waits (MikroORM 7's getNativeClient() is async).
        if (++poolCalls === 2) await poolGate.wait
        return { idle: 1, used: 2, pending: 0, max: 5 }
      }
    } as unknown as PoolSource['pools']
  }
  metrics.get('dbPoolConnections', collectPools(new Set([source]), metrics))
  metrics.get('dbPoolMax')
  // Another family whose collector is slow in the first scrape: that scrape renders only after it.
  new Gauge({ name: 'other', help: 'x', registers: [registry], async collect () { if (++otherCalls === 1) await otherGate.wait } }) // eslint-disable-line no-new
  const tick = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))
  const first = renderRegistry(registry, 'text') // pool gauges collected, waits for `other`
  await tick()
  const second = renderRegistry(registry, 'text') // its pool collector awaits the pool
  await tick()
  otherGate.open()
  const body = await first
  t.match(body, 'db_pool_max_connections{context="default",vendor="postgresql"} 5', 'the first scrape has the gauges')
  t.match(body, 'db_pool_connections{context="default",vendor="postgresql",state="used"} 2')
  poolGate.open()
  t.match(await second, 'db_pool_connections{context="default",vendor="postgresql",state="idle"} 1')
})
