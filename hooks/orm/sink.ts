/**
 * The series of one MetricSet for one ORM, resolved once and kept (no label lookup per
 * statement). Families the probe left out (mikro-orm.ts) are never created.
 */
import { activeSpanTrace } from '../../lib/exemplars'
import type { CounterSeries, HistogramSeries } from '../../lib/families'
import type { MetricSet } from '../../lib/metrics'
import { OPERATIONS } from './sql'
import { WRITE_FAMILIES } from './writes'

/** What a Sink serves, from the probe. */
export interface Served {
  /** Statements, errors, durations, transactions, native writes. */
  readonly statements: boolean
  /** `db_new_connections_total` (and its errors), with the pool gauges. */
  readonly pools: boolean
}

/** One MetricSet's series for one ORM. */
export class Sink {
  readonly metrics: MetricSet
  readonly onInternalError: (component: string, err: unknown) => void
  private readonly context: string
  private readonly vendor: string
  private readonly writes: Array<Map<string, CounterSeries>> = [new Map(), new Map(), new Map(), new Map()]
  private readonly errors = new Map<string, CounterSeries>()
  readonly execute: CounterSeries | undefined
  readonly durations: HistogramSeries[]
  readonly commits: CounterSeries | undefined
  readonly rollbacks: CounterSeries | undefined
  readonly newConnections: CounterSeries | undefined
  readonly newConnectionErrors: CounterSeries | undefined

  constructor (metrics: MetricSet, context: string, vendor: string, served: Served, onInternalError: (component: string, err: unknown) => void) {
    this.metrics = metrics
    this.context = context
    this.vendor = vendor
    this.onInternalError = onInternalError
    for (const key of WRITE_FAMILIES) metrics.get(key)
    if (served.pools) {
      this.newConnections = metrics.get('dbNewConnections').child(context, vendor)
    }
    // Connection failures are seen by statements (MikroORM 7) and by the pool (6).
    if (served.statements || served.pools) this.newConnectionErrors = metrics.get('dbNewConnectionErrors').child(context, vendor)
    if (served.statements) {
      this.execute = metrics.get('dbExecute').child(context, vendor)
      metrics.get('dbErrors')
      const duration = metrics.get('dbDuration')
      this.durations = OPERATIONS.map((op) => duration.child(context, vendor, op))
      const tx = metrics.get('dbTransactions')
      this.commits = tx.child(context, vendor, 'commit')
      this.rollbacks = tx.child(context, vendor, 'rollback')
    } else {
      this.durations = []
    }
  }

  /** Records a statement's duration, with the active OpenTelemetry span as exemplar when asked for. */
  observeDuration (op: number, seconds: number): void {
    const trace = this.metrics.exemplars ? activeSpanTrace() : undefined
    if (trace === undefined) this.durations[op].observe(seconds)
    else this.durations[op].observeWithExemplar(seconds, trace.traceId, trace.spanId)
  }

  /** Counts `n` writes of one kind (writes.ts) of one entity. */
  write (kind: number, entity: string, n: number): void {
    const byEntity = this.writes[kind]
    let s = byEntity.get(entity)
    if (s === undefined) {
      s = this.metrics.get(WRITE_FAMILIES[kind]).child(this.context, entity)
      byEntity.set(entity, s)
    }
    s.inc(n)
  }

  /** Counts a failed statement by its MikroORM exception name. */
  error (type: string): void {
    let s = this.errors.get(type)
    if (s === undefined) {
      s = this.metrics.get('dbErrors').child(this.context, this.vendor, type)
      this.errors.set(type, s)
    }
    s.value++
  }
}
