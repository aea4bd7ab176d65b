/** The shared-directory mode's settings and constants (docs/multiprocess.md). */
import type { FamilyKey } from '../metrics'

/** Default time between two snapshots of a process; a SIGKILL loses at most this much. */
export const DEFAULT_FLUSH_INTERVAL_MS = 1000
/** The environment variables that turn the mode on, in order of precedence (prometheus_client's). */
export const MULTIPROC_ENV_VARS: readonly string[] = Object.freeze(['PROMETHEUS_MULTIPROC_DIR', 'prometheus_multiproc_dir'])

/** The resolved `multiprocess` option. */
export interface MultiprocessConfig {
  /** Absolute path of the shared directory. */
  readonly dir: string
  readonly flushIntervalMs: number
  /** Where the directory came from: `'option'` or the environment variable's name. */
  readonly source: string
}

/**
 * How a gauge family is combined across live processes: `sum`, `min`, `max`, `average` over the
 * live stores that have the series (`max` deduplicates info gauges: each label set once, value
 * 1); `latest`: one value for the whole application, the scraping process's own, else the
 * freshest live process's.
 */
export type GaugeMode = 'sum' | 'min' | 'max' | 'average' | 'latest'

/** Per-family aggregation of the gauges of the catalogue; a gauge not listed is summed. */
export const GAUGE_MODES: Readonly<Partial<Record<FamilyKey, GaugeMode>>> = Object.freeze({
  httpInFlight: 'sum',
  dbPoolConnections: 'sum',
  dbPoolMax: 'sum',
  fastifyInfo: 'max',
  ormInfo: 'max',
  migrationsApplied: 'latest',
  migrationsPending: 'latest'
})
