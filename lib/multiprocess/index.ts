/**
 * Several processes, one truth: the shared-directory mode (`PROMETHEUS_MULTIPROC_DIR`,
 * docs/multiprocess.md).
 *
 * Every process keeps counting in memory exactly as in single-process mode (the hot path does
 * not change). A store per registry writes a snapshot of the registry to its own file in the
 * directory; a scrape of any process reads every file and the archive of the processes that
 * exited, and aggregates them. Where each part lives:
 *
 * - `config.ts`    the settings, and how the package's gauges combine
 * - `identity.ts`  who a process is, and whether it still runs
 * - `format.ts`    the file format (versioned), its reader and writer side by side
 * - `files.ts`     the directory's I/O: checks, atomic writes, reads
 * - `snapshot.ts`  what a process writes (pure)
 * - `exact.ts`, `aggregate.ts`, `summary.ts`  the sums across processes, classic and native (pure)
 * - `defaults.ts`  which metrics are the client's default metrics (per process), by what they are
 * - `archive.ts`   the archive of exited processes and its lock
 * - `exit.ts`      exit and signal handling
 * - `store.ts`     the store, which orchestrates them
 */
export { DEFAULT_FLUSH_INTERVAL_MS, GAUGE_MODES, MULTIPROC_ENV_VARS, type GaugeMode, type MultiprocessConfig } from './config'
export { hostId, processAlive, processStart } from './identity'
export { ARCHIVE_FILE, LOCK_FILE, type ArchiveSnapshot, type ExemplarSnapshot, type FamilySnapshot, type ForeignSnapshot, type ProcessSnapshot } from './format'
export { checkDirectory } from './files'
export { addExact, exactValue } from './exact'
export { Aggregate } from './aggregate'
export { appFamilySnapshot } from './snapshot'
export { isDefaultMetric, markDefaultMetrics } from './defaults'
export { MultiprocessStore, type StoreOptions } from './store'
