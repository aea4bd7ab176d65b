/**
 * Where an exemplar's trace comes from: the active OpenTelemetry span when `@opentelemetry/api`
 * is installed (it is looked up once, never a dependency of this package), else the request's
 * W3C `traceparent` header (https://www.w3.org/TR/trace-context/).
 */

/** The trace of an observation: 32 and 16 lowercase hex digits. */
export interface TraceContext {
  readonly traceId: string
  readonly spanId: string
}

const INVALID_TRACE_ID = '00000000000000000000000000000000'
const INVALID_SPAN_ID = '0000000000000000'
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/

/**
 * The trace id and parent span id of a W3C `traceparent` header, or undefined when it is absent
 * or invalid: version `ff`, all-zero ids, upper-case hex, or version 00 with anything after the
 * flags.
 */
export function parseTraceparent (header: string | string[] | undefined): TraceContext | undefined {
  if (typeof header !== 'string') return undefined
  const value = header.trim()
  const m = TRACEPARENT.exec(value)
  if (m === null) return undefined
  const [, version, traceId, spanId] = m
  if (version === 'ff') return undefined
  if (version === '00' && value.length !== 55) return undefined
  if (traceId === INVALID_TRACE_ID || spanId === INVALID_SPAN_ID) return undefined
  return { traceId, spanId }
}

interface OpenTelemetryApi {
  trace: { getActiveSpan: () => { spanContext: () => { traceId: string, spanId: string } } | undefined }
}

let openTelemetry: OpenTelemetryApi | null | undefined

/** `@opentelemetry/api` when the application can resolve it, else null (looked up once). */
export function openTelemetryApi (): OpenTelemetryApi | null {
  if (openTelemetry === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const api = require('@opentelemetry/api') as OpenTelemetryApi
      openTelemetry = typeof api?.trace?.getActiveSpan === 'function' ? api : null
    } catch {
      openTelemetry = null
    }
  }
  return openTelemetry
}

/** The active OpenTelemetry span's trace, when the API is installed and a valid span is active. */
export function activeSpanTrace (): TraceContext | undefined {
  const api = openTelemetryApi()
  if (api === null) return undefined
  const span = api.trace.getActiveSpan()
  if (span === undefined) return undefined
  const { traceId, spanId } = span.spanContext()
  if (traceId === INVALID_TRACE_ID || spanId === INVALID_SPAN_ID || traceId.length !== 32 || spanId.length !== 16) return undefined
  return { traceId, spanId }
}

/** The trace of an HTTP request: the active OpenTelemetry span's, else its `traceparent` header's. */
export function requestTrace (headers: Record<string, string | string[] | undefined>): TraceContext | undefined {
  return activeSpanTrace() ?? parseTraceparent(headers.traceparent)
}
