/**
 * How did this response end? The one place that answers it, for every path (docs/metrics.md,
 * "How a response ends"):
 * - completed: Node's HTTP/1 server finished it (its `http.server.response.finish` diagnostics
 *   channel), or a status line was written straight to the socket (the 101 of an upgrade, the 408
 *   of a `requestTimeout`, any status a `clientError` handler writes), or, where Node's HTTP/1
 *   server is not the transport (`inject()`, HTTP/2), the response closed after the app ended it;
 * - ended by the server before completing: the connection closed without the client going away
 *   (a reply stream that failed mid-reply, a socket the app or the server destroyed, a
 *   `connectionTimeout`): a failure of the server, with the `type` of what ended it;
 * - aborted: the client went away first (it closed or reset the connection, or reset its HTTP/2
 *   stream), and only that;
 * - upgraded (completed at its 101) and hijacked (completed when the app ends the response) are
 *   completions.
 *
 * Cost: no listener per response on Node's HTTP/1 server. Adding a 'close' listener cost about 650
 * instructions per request (Node keeps listeners in a dictionary), and emitting it a generic
 * call (bench/instructions.js). A completed response is settled from the finish channel; the
 * rest from listeners added once per socket, on its first request ('close', and 'timeout' to
 * tell a server timeout), which settle the response the socket was serving and those queued
 * behind it by a pipelining client, for which Node itself emits nothing at all.
 */
import * as diagnostics from 'node:diagnostics_channel'
import { ServerResponse, type IncomingMessage, type Server } from 'node:http'
import { Socket } from 'node:net'
import { kResponseState } from '../../lib/symbols'
import type { FastifyInternals } from './fastify'
import { exceptionType } from './series'
import { ABORTED, COMPLETED, SERVER_ENDED, settleAll, type Ending, type RequestState, type StatefulResponse } from './state'

type AnyFn = (...args: any[]) => any

/**
 * Error codes of a connection the client (or the network between) ended: a reset, a broken pipe,
 * an aborted or timed-out TCP connection. A socket that closed with one of them was left by the
 * client; with any other error, or none and no end of its input, the server closed it.
 */
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'ENETUNREACH', 'EHOSTUNREACH'])
/** The `type` of a response the server ended by closing its connection without an error (Node's code for a stream closed before it finished). */
export const PREMATURE_CLOSE = 'ERR_STREAM_PREMATURE_CLOSE'
/** The `type` of a response whose connection the server closed on a socket timeout (`connectionTimeout`, `server.timeout`). */
export const SOCKET_TIMEOUT = 'ERR_HTTP_SOCKET_TIMEOUT'

/** What the package knows of one socket of Node's HTTP/1 server. */
class SocketWatch {
  /** The response the socket serves (the last one that started on it while not queued). */
  current: RequestState | null = null
  /** The responses queued behind it (HTTP pipelining), while there are any. */
  queue: Set<RequestState> | null = null
  /** Node destroyed the socket on its timeout. */
  timedOut = false
}
const sockets = new WeakMap<Socket, SocketWatch>()

const RESPONSE_FINISH = 'http.server.response.finish'
/** Installations currently subscribed to RESPONSE_FINISH (one shared subscriber). */
let finishSubscribers = 0

function onResponseFinish (message: unknown): void {
  const res = (message as { response?: StatefulResponse } | null)?.response
  const state = res?.[kResponseState]
  if (state !== undefined) settleAll(state, COMPLETED, '')
}

/**
 * Why a socket closed: '' when the client went away (its input ended, or a reset or broken
 * connection errored it), else the `type` of the server's failure.
 */
function serverCause (socket: Socket, watch: SocketWatch): string {
  if (watch.timedOut) return SOCKET_TIMEOUT
  const err = socket.errored
  if (err !== null && err !== undefined) {
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' && CLIENT_GONE.has(code) ? '' : exceptionType(err)
  }
  return socket.readableEnded ? '' : PREMATURE_CLOSE
}

/**
 * Settles a response whose connection closed before Node reported it finished: one the app had
 * ended counts as completed when the client left (it was sent as far as the server goes), and as
 * ended by the server when the server closed the connection under it.
 */
function settleClosed (state: RequestState, cause: string, sent: boolean): void {
  if (state.done) return
  const ending: Ending = cause !== '' ? SERVER_ENDED : sent && state.reply.raw.writableEnded ? COMPLETED : ABORTED
  settleAll(state, ending, cause)
}

function onSocketClose (this: Socket): void {
  const watch = sockets.get(this)
  if (watch === undefined) return
  const cause = serverCause(this, watch)
  if (watch.current !== null) settleClosed(watch.current, cause, true)
  const queue = watch.queue
  if (queue !== null) {
    watch.queue = null
    // Still queued behind another response when the connection closed: never sent, whatever the
    // handler did, unless Node had started sending it.
    for (const queued of queue) settleClosed(queued, cause, queued.reply.raw.socket !== null)
  }
}

/** Runs after Node's own timeout listener (added at the connection): Node destroyed the socket unless someone handled the timeout. */
function onSocketTimeout (this: Socket): void {
  if (!this.destroyed) return
  const watch = sockets.get(this)
  if (watch !== undefined) watch.timedOut = true
}

/**
 * The response's 'close' listener, shared by every request (no closure per request), where Node's
 * HTTP/1 server is not the transport (Fastify's inject(), HTTP/2): the response ended, or the
 * stream closed first: ended by the server when it destroyed its HTTP/2 stream (see
 * watchHttp2Stream), else the client reset it.
 */
function onResponseClose (this: StatefulResponse): void {
  const state = this[kResponseState]
  if (state === undefined || state.done) return
  if (this.writableEnded) settleAll(state, COMPLETED, '')
  else if (serverClosedStreams.has(this)) settleAll(state, SERVER_ENDED, PREMATURE_CLOSE)
  else settleAll(state, ABORTED, '')
}

/** HTTP/2 responses whose stream the server (the app, Fastify, Node) destroyed before they ended. */
const serverClosedStreams = new WeakSet<object>()

/**
 * Tells who ended an HTTP/2 stream before its response ended, from public parts of Node's
 * Http2Stream: its `'aborted'` event is emitted when the stream closes with its writable side still
 * open, and `destroyed` is already true then when the server called `destroy()` (the app, or
 * Fastify on a reply stream that failed), while a reset from the client (RST_STREAM, or its
 * connection closing) closes the stream first and destroys it after. Checked on Node 20 and 24 by
 * test/http2.test.ts (client cancel, client connection gone, server destroy with and without an
 * error). One listener per HTTP/2 stream; HTTP/1 never gets here.
 */
function watchHttp2Stream (res: StatefulResponse): void {
  const stream = (res as { stream?: unknown }).stream as { once?: unknown, destroyed?: unknown } | undefined
  if (stream === undefined || stream === null || typeof stream.once !== 'function') return
  ;(stream.once as (event: string, listener: () => void) => void).call(stream, 'aborted', () => {
    if (stream.destroyed === true) serverClosedStreams.add(res)
  })
}

/** The end of a response that was found ended when a state joined it (another installation's). */
export function endingOfEnded (res: ServerResponse): Ending {
  return res.writableEnded ? COMPLETED : ABORTED
}

/**
 * Makes sure the end of this response will be seen: through the finish channel and the socket's
 * listeners when Node's HTTP/1 server serves it, else through a 'close' listener on the response.
 * Kept small for the compiler to inline; the rare cases are in functions of their own.
 */
export function watchEnd (req: IncomingMessage, res: StatefulResponse, state: RequestState, internals: FastifyInternals): void {
  const socket = req.socket
  let watch = sockets.get(socket)
  if (watch === undefined) {
    watch = watchSocket(socket, res)
    if (watch === undefined) {
      // 'close' fires once per response; on() avoids once()'s wrapper allocation.
      res.on('close', onResponseClose)
      watchHttp2Stream(res)
      return
    }
  }
  if (res.socket !== socket || socket.destroyed) {
    watchQueued(socket, watch, state)
  } else {
    watch.current = state
    state.socketWatch = watch
  }
  if (internals.isUpgrade(req)) watchRaw(socket, res)
}

/** On a socket's first request: adds its listeners, or says that the socket is not Node's HTTP/1 server's. */
function watchSocket (socket: Socket, res: ServerResponse): SocketWatch | undefined {
  if (finishSubscribers === 0 || !(socket instanceof Socket) || !(res instanceof ServerResponse)) return undefined
  const watch = new SocketWatch()
  sockets.set(socket, watch)
  socket.on('close', onSocketClose)
  socket.on('timeout', onSocketTimeout)
  return watch
}

/**
 * A response not being served by its socket: queued behind another response on the connection
 * (HTTP pipelining), or the connection is already gone (it closed while an earlier hook waited).
 */
function watchQueued (socket: Socket, watch: SocketWatch, state: RequestState): void {
  if (socket.destroyed) {
    settleClosed(state, serverCause(socket, watch), false)
    return
  }
  if (watch.queue === null) watch.queue = new Set()
  watch.queue.add(state)
  state.queue = watch.queue
}

/** Forgets a settled state: out of its socket's queue, and no longer the socket's current response (not kept alive by an idle connection). */
export function forget (state: RequestState): void {
  const watch = state.socketWatch
  if (watch !== null) {
    if (watch.current === state) watch.current = null
    state.socketWatch = null
  }
  if (state.queue !== null) {
    state.queue.delete(state)
    state.queue = null
  }
}

/**
 * A status line written straight to the socket, never through the response: the 101 that `ws`
 * writes to complete an upgrade (the socket then lives on as the upgraded connection, whose end
 * is no abort), the 408 Fastify's `clientError` handler writes on a `requestTimeout`. The
 * socket's write and end are watched until the first call: when it writes a status line before
 * the response sent its headers, that line completes the request with its status (and the body
 * bytes in the same write), and the watch is removed either way.
 */
function watchRaw (socket: Socket, res: StatefulResponse): void {
  const s = socket as Socket & Record<'write' | 'end', AnyFn>
  const originals = { write: s.write, end: s.end }
  const own = { write: Object.hasOwn(s, 'write'), end: Object.hasOwn(s, 'end') }
  const watchers = { write: watch('write'), end: watch('end') }
  function unwatch (): void {
    for (const name of ['write', 'end'] as const) {
      if (s[name] !== watchers[name]) continue // replaced since by someone else: theirs stays
      if (own[name]) s[name] = originals[name]
      else delete (s as Partial<typeof s>)[name]
    }
  }
  function watch (name: 'write' | 'end'): AnyFn {
    return function rawStatusWatch (this: Socket): unknown {
      unwatch()
      const first = res[kResponseState]
      if (first !== undefined && !first.done && !res.headersSent) {
        try {
          settleRaw(first, arguments[0])
        } catch (err) {
          first.inst.report(err)
        }
      }
      return originals[name].apply(this, arguments as unknown as unknown[])
    }
  }
  s.write = watchers.write
  s.end = watchers.end
}

/** Settles the states of a response whose status line `chunk` was written straight to the socket. */
function settleRaw (first: RequestState, chunk: unknown): void {
  const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('latin1') : ''
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text)
  if (m === null) return
  const status = Number(m[1])
  // Body bytes in the same write (a refusal such as ws's 400, Fastify's JSON 408); a 101 has none.
  const headEnd = text.indexOf('\r\n\r\n')
  const bodyBytes = status === 101 || headEnd < 0 ? 0 : text.length - headEnd - 4
  for (let s: RequestState | null = first; s !== null; s = s.next) {
    s.rawStatus = status
    s.responseBytes = bodyBytes
  }
  settleAll(first, COMPLETED, '')
}

/**
 * Node's server emits `clientError` for a socket whose request it gives up on (ERR_HTTP_REQUEST_TIMEOUT
 * on `requestTimeout`, a parse error), and its handler (Fastify's) may write a status straight to
 * the socket, then destroy it. Listening first (prependListener) lets that status be seen; the
 * listener changes nothing, since Fastify always has one (Node's own answer is used only when
 * there is none).
 */
function onClientError (_err: unknown, socket: unknown): void {
  const watch = sockets.get(socket as Socket)
  const state = watch?.current
  if (state === undefined || state === null || state.done) return
  const res = state.reply.raw as StatefulResponse
  if (!res.headersSent && res.socket === socket) watchRaw(socket as Socket, res)
}
const clientErrorServers = new WeakMap<Server, number>()

/**
 * Subscribes this installation to the ends of responses (the finish channel) and, on its
 * server, to `clientError`; returns the unsubscription, for the app's `onClose`.
 */
export function observeResponseEnds (server: Server | undefined): () => void {
  if (finishSubscribers++ === 0) diagnostics.subscribe(RESPONSE_FINISH, onResponseFinish)
  const listens = server !== undefined && typeof server.prependListener === 'function'
  if (listens) {
    const n = clientErrorServers.get(server) ?? 0
    if (n === 0) server.prependListener('clientError', onClientError)
    clientErrorServers.set(server, n + 1)
  }
  let open = true
  return () => {
    if (!open) return
    open = false
    if (--finishSubscribers === 0) diagnostics.unsubscribe(RESPONSE_FINISH, onResponseFinish)
    if (listens) {
      const n = (clientErrorServers.get(server) ?? 1) - 1
      clientErrorServers.set(server, n)
      if (n === 0) server.removeListener('clientError', onClientError)
    }
  }
}
