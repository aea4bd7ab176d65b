/**
 * The text exposition's pieces that every family shares, pure: escaping, number formats (the
 * Prometheus text format's, OpenMetrics' canonical one, seconds) and the parts of a sample line.
 */
import type { ExpositionWriter } from '../writer'
import type { Exemplar } from './series'

/** `\n` */
export const NEWLINE = 10
/** ` ` */
export const SPACE = 32
/** `{` */
export const OPEN = 123
/** `}` */
export const CLOSE = 125

/** Escapes a label value for the exposition formats (backslash, double quote, newline). */
export function escapeLabelValue (value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value
}

/** Escapes HELP text (backslash and newline). */
export function escapeHelp (text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

/** Formats a sample value the way prom-client does (`+Inf`, `-Inf`, `NaN`). */
export function formatValue (value: number): string {
  if (Number.isFinite(value)) return String(value)
  if (Number.isNaN(value)) return 'NaN'
  return value > 0 ? '+Inf' : '-Inf'
}

/**
 * A number in the canonical form OpenMetrics asks for in `le` and `quantile` label values: Go's
 * shortest `%g` (exponent from 1e+06 up and below 1e-04, at least two exponent digits), with `.0`
 * added to an integer (`1.0`, `16.0`, `1.048576e+06`, `+Inf`). The same text client_golang and
 * the Python client write, so one bucket has one label value whichever client exposed it.
 */
export function formatCanonical (value: number): string {
  if (!Number.isFinite(value)) return formatValue(value)
  if (value === 0) return '0.0'
  const [mantissa, exponent] = value.toExponential().split('e')
  const e = Number(exponent)
  if (e < -4 || e >= 6) return `${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`
  const fixed = String(value)
  return fixed.includes('.') ? fixed : `${fixed}.0`
}

/** `name="value",...` of a series' labels, escaped. */
export function labelText (labelNames: readonly string[], values: readonly string[]): string {
  let out = ''
  for (let i = 0; i < labelNames.length; i++) {
    if (i > 0) out += ','
    out += `${labelNames[i]}="${escapeLabelValue(values[i])}"`
  }
  return out
}

/** ` # {trace_id="...",span_id="..."} value timestamp` after an OpenMetrics bucket sample. */
export function writeExemplarText (w: ExpositionWriter, e: Exemplar): void {
  w.text(` # {trace_id="${e.traceId}"${e.spanId !== '' ? `,span_id="${e.spanId}"` : ''}} ${formatValue(e.value)} ${(e.timestampMs / 1000).toFixed(3)}`)
}

/** Writes `name{labels} ` of one sample line (no braces for a series without labels). */
export function writeSampleName (w: ExpositionWriter, name: Buffer, s: { readonly labelText: string, readonly labelBytes: Buffer }): void {
  w.bytes(name)
  if (s.labelText !== '') {
    w.byte(OPEN)
    w.bytes(s.labelBytes)
    w.byte(CLOSE)
  }
  w.byte(SPACE)
}

/** Writes the sample line `name{labels} value` of a series. */
export function writeSample (w: ExpositionWriter, name: Buffer, s: { readonly labelText: string, readonly labelBytes: Buffer }, value: number): void {
  writeSampleName(w, name, s)
  w.number(value)
  w.byte(NEWLINE)
}

/** A series with a start: its labels and `startMs` (NaN: unknown). */
export interface StartedSeries { readonly labelText: string, readonly labelBytes: Buffer, readonly startMs: number }

/**
 * OpenMetrics `<name>_created{labels} <seconds>`: when the series began (its `startMs`); nothing
 * for a series whose start is unknown (NaN, in a multiprocess aggregate).
 */
export function writeCreated (w: ExpositionWriter, name: Buffer, s: StartedSeries): void {
  if (!Number.isFinite(s.startMs)) return
  writeSampleName(w, name, s)
  w.text(formatSeconds(s.startMs))
  w.byte(NEWLINE)
}

/** Milliseconds since the epoch as OpenMetrics seconds (`1765123456.789`). */
export function formatSeconds (ms: number): string {
  return (ms / 1000).toFixed(3)
}
