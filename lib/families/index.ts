/**
 * Lean metric families: counters, gauges and histograms whose series are plain objects that the
 * hot path updates with one property write (`series.value++`, `series.observe(v)`), with no
 * label hashing per observation. Callers resolve a series once (per route, per status) and keep
 * it. Each family also implements prom-client's metric interface (`name`, `help`, `type`,
 * `aggregator`, `get()`), so it lives in an ordinary prom-client `Registry` beside the app's own
 * metrics, and renders itself straight to exposition text for fast scrapes (`render`).
 *
 * One file per concern: text.ts (escaping and number formats, pure), series.ts, family.ts (the
 * base and what counters and gauges share), counter.ts, gauge.ts, histogram.ts.
 */
export { OVERFLOW_LABEL_VALUE, MetricFamily, isMetricFamily, type FamilyConfig, type FamilyType } from './family'
export { BaseSeries, CounterSeries, GaugeSeries, HistogramSeries, type Exemplar } from './series'
export { CounterFamily } from './counter'
export { GaugeFamily } from './gauge'
export { HistogramFamily } from './histogram'
export { escapeHelp, escapeLabelValue, formatCanonical, formatSeconds, formatValue, writeCreated, writeSample, type StartedSeries } from './text'
