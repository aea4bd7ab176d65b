/**
 * Request and response body sizes.
 *
 * Request: `Content-Length`, or the bytes read when there is none (a chunked HTTP/1 upload, an
 * HTTP/2 body), through a `'data'` listener added with prependListener.
 * Response: `Content-Length` as Fastify sent it, or the bytes the response was given: streams
 * reach the socket through res.write (countingWrite), and a hijacked reply may end its body with
 * res.end(chunk) (recordingEnd). Both are installed on the response once, by its first state, and
 * call what they found there, so a later patch of the app or another copy of the package still runs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInternals } from './fastify'
import type { RequestState, StatefulResponse } from './state'
import { kResponseState } from '../../lib/symbols'

type AnyFn = (...args: any[]) => any

/**
 * Whether an HTTP/2 request may carry a body: its HEADERS frame did not end the stream
 * (`endAfterHeaders`, public on Node's Http2Stream, false for a request with a body).
 */
function hasHttp2Body (req: IncomingMessage): boolean {
  if (req.httpVersionMajor !== 2) return false
  const stream = (req as unknown as { stream?: { endAfterHeaders?: boolean } }).stream
  return stream?.endAfterHeaders === false
}

/** Starts counting the request body of `state`: its Content-Length, or the bytes read. */
export function countRequestBytes (req: IncomingMessage, state: RequestState): void {
  const cl = req.headers['content-length']
  if (cl !== undefined) {
    const n = Number(cl)
    if (Number.isFinite(n) && n >= 0) state.requestBytes = n
  } else if (req.headers['transfer-encoding'] !== undefined || hasHttp2Body(req)) {
    // Chunked upload, or an HTTP/2 body without content-length (HTTP/2 has no chunked
    // encoding: DATA frames until the stream ends): count what is read. prependListener does
    // not switch the stream to flowing mode (Readable#on('data') would), so whoever reads the
    // body still controls it.
    req.prependListener('data', (chunk: Buffer | string) => { state.requestBytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length })
  }
}

/** Installs the counting write and the recording end on a response, for its first state. */
export function countResponseBytes (res: StatefulResponse, first: RequestState): void {
  first.write = res.write
  res.write = countingWrite as ServerResponse['write']
  first.end = res.end
  res.end = recordingEnd as ServerResponse['end']
}

/**
 * Counts streamed response bytes. Streams (Node and web) reach the socket through res.write;
 * Fastify ends other payloads with res.end(payload) and a Content-Length, so this runs only for
 * streamed bodies. Shared by every request; the states are on the response. Only the first
 * state of a response (of this copy of the package) replaces res.write, so it is never wrapped
 * twice and never calls itself: it calls the write it found, which is Node's own or another
 * copy's counting write.
 */
function countingWrite (this: StatefulResponse, chunk: any, ...rest: any[]): boolean {
  const first = this[kResponseState] as RequestState
  if (chunk != null) {
    const n = typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof rest[0] === 'string' ? rest[0] as BufferEncoding : 'utf8') : chunk.length
    for (let s: RequestState | null = first; s !== null; s = s.next) if (!s.done) s.responseBytes += n
  }
  return (first.write as AnyFn).apply(this, [chunk, ...rest])
}

/**
 * Keeps the chunk of res.end(chunk) for the response size. Fastify ends its own payloads with a
 * Content-Length, which gives the size, so the chunk is only kept (one field write) and measured
 * when the response is settled without one: a hijacked reply (`reply.hijack()`) that ends its
 * body with res.end(chunk), with or without headers passed inline to res.writeHead(), where
 * neither Fastify nor res.getHeader() knows them. Installed and chained like countingWrite.
 */
function recordingEnd (this: StatefulResponse, chunk?: unknown, encoding?: unknown): StatefulResponse {
  const first = this[kResponseState] as RequestState
  if (chunk != null && typeof chunk !== 'function') {
    for (let s: RequestState | null = first; s !== null; s = s.next) {
      if (s.done) continue
      s.endChunk = chunk
      s.endEncoding = encoding
    }
  }
  // Every response ends here: `arguments` as it is, no array built per call.
  return (first.end as AnyFn).apply(this, arguments as unknown as unknown[])
}

/** Bytes of the chunk a response was ended with (see recordingEnd). */
function endChunkBytes (state: RequestState): number {
  const chunk = state.endChunk
  if (chunk === null) return 0
  state.endChunk = null
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof state.endEncoding === 'string' && Buffer.isEncoding(state.endEncoding) ? state.endEncoding : 'utf8')
  const n = (chunk as { byteLength?: unknown }).byteLength
  return typeof n === 'number' ? n : 0
}

/**
 * The body bytes of a response written through it (not straight to the socket). HEAD, 204 and 304
 * responses carry no body whatever their headers say. A completed response is measured by its
 * Content-Length when it has one; one the server ended before completing, by what it was given
 * (its Content-Length promised more than was sent).
 */
export function responseBodyBytes (state: RequestState, internals: FastifyInternals, status: number, completed: boolean): number {
  if (state.routeMethod.method === 'HEAD' || status === 204 || status === 304) return 0
  if (completed) {
    const cl = internals.contentLengthOf(state.reply)
    if (cl !== undefined) {
      const n = Number(cl)
      if (Number.isFinite(n) && n >= 0) return n
    }
  }
  // Streamed (res.write), and for a hijacked reply also what it gave res.end().
  return state.responseBytes + endChunkBytes(state)
}
