/**
 * What one request carries from the plugin's `onRequest` hook to the end of its response, and the
 * few things every module of the HTTP observation agrees on. The state flows one way: `index.ts`
 * creates it with the route's series (`series.ts`), `bytes.ts` and `phases.ts` add to it while the
 * request runs, `response-end.ts` decides how it ended and hands it back to be recorded.
 */
import type { FastifyReply } from 'fastify'
import type { ServerResponse } from 'node:http'
import { kResponseState } from '../../lib/symbols'
import type { RouteMethodSeries, RouteRecord } from './series'

/** The `phase` label values, in lifecycle order. */
export const PHASES = Object.freeze(['onRequest', 'preParsing', 'preValidation', 'preHandler', 'handler', 'preSerialization', 'onSend'] as const)
/** A `phase` label value. */
export type Phase = typeof PHASES[number]

/** How a response ended (see response-end.ts); the `Ended` values. */
export type Ending = typeof COMPLETED | typeof SERVER_ENDED | typeof ABORTED
/** Completed: the client received the whole response, with `res.statusCode` or the status written to the socket. */
export const COMPLETED = 0
/** Ended by the server (the app, a failed stream, a timeout) before it completed: a failure of the server, never an abort. */
export const SERVER_ENDED = 1
/** Aborted: the client went away before the response completed. */
export const ABORTED = 2

/** What an installation lends each of its requests' states: how to settle one and where to report a failure. */
export interface Installation {
  /**
   * Records a request once its response ended; never throws. `cause` is the `type` label of the
   * server's failure when `ending` is SERVER_ENDED.
   */
  readonly settle: (state: RequestState, ending: Ending, cause: string) => void
  /** Reports an exception caught inside the package (counted, logged once). */
  readonly report: (err: unknown) => void
}

/** One request's state. A fixed shape, one allocation per request. */
export class RequestState {
  start: number
  route: RouteRecord
  routeMethod: RouteMethodSeries
  requestBytes = 0
  responseBytes = 0
  /** Bit i set: phase i was timed for this request. */
  phaseMask = 0
  phaseTimes: Float64Array | null = null
  /** Sum of every timed hook's time, to take nested hook time out of a synchronous handler. */
  hookTime = 0
  /** When the handler started (the handler channel's start), or -1 while it is not running. */
  handlerStart = -1
  /** hookTime when the handler started. */
  handlerHooks = 0
  /** A hook that returned without saying it finished, timed until the next step the package sees (phases.ts). */
  pending: { stop: () => void } | null = null
  /** A timed hook failed: Fastify sends the error and the handler does not run (its channel still reports a start). */
  hookFailed = false
  done = false
  /**
   * A status written straight to the socket rather than through the response (the 101 of a
   * WebSocket handshake, the 408 of a request timeout; see response-end.ts), or 0. When set, it
   * is the request's status.
   */
  rawStatus = 0
  /** The responses queued behind another on the same connection, while this one is (response-end.ts). */
  queue: Set<RequestState> | null = null
  /** What response-end.ts knows of the socket serving this response (Node's HTTP/1 server only). */
  socketWatch: { current: RequestState | null } | null = null
  /** The state of another installation (another instrumented app) serving the same raw response. */
  next: RequestState | null = null
  readonly reply: FastifyReply
  /** The write() the counting write found on the response and calls (first state of a response only; bytes.ts). */
  write: ServerResponse['write'] | null = null
  /** The end() the recording end found on the response and calls (first state of a response only; bytes.ts). */
  end: ServerResponse['end'] | null = null
  /** The chunk given to res.end(), kept (not measured) until the response is settled (bytes.ts). */
  endChunk: unknown = null
  /** Its encoding argument, when a string. */
  endEncoding: unknown = undefined
  readonly inst: Installation

  constructor (start: number, route: RouteRecord, routeMethod: RouteMethodSeries, reply: FastifyReply, inst: Installation) {
    this.start = start
    this.route = route
    this.routeMethod = routeMethod
    this.reply = reply
    this.inst = inst
  }

  addPhase (phase: number, ms: number): void {
    if (this.phaseTimes === null) this.phaseTimes = new Float64Array(PHASES.length)
    this.phaseTimes[phase] += ms
    this.phaseMask |= 1 << phase
  }
}

/** A raw response, with the first state of the installations serving it under the package's symbol. */
export type StatefulResponse = ServerResponse & { [kResponseState]?: RequestState }

/** Settles every state on one response: one per installation serving it. */
export function settleAll (first: RequestState, ending: Ending, cause: string): void {
  for (let s: RequestState | null = first; s !== null; s = s.next) s.inst.settle(s, ending, cause)
}
