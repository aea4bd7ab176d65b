/**
 * Phase timing: the time inside the app's hook functions of each lifecycle phase, and inside the
 * handler. It adds no hook and changes nothing the application or other plugins can see (see
 * "What the plugin changes in your app" in docs/metrics.md):
 * - the handler is timed from Fastify's own `tracing:fastify.request.handler` diagnostics channel
 *   (start, end, asyncStart), subscribed only once some route has a hook to time, and never
 *   wrapped;
 * - lifecycle hooks are timed by wrapping the bound copies Fastify keeps in the route's context
 *   (never the functions in the route options that `onRoute` hooks see), once per route, on its
 *   first request (PhaseTimer.timeRouteHooks), through fastify.ts, which checks those arrays. A
 *   wrapper hands the hook exactly what Fastify handed it and returns what the hook returned; it
 *   observes completion through the `done` callback or, only for a native promise, through the
 *   promise itself. It never calls `then()` on any other value: such a hook is timed until
 *   Fastify's next step that the package sees (beginStep).
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import * as diagnostics from 'node:diagnostics_channel'
import { isPromise } from 'node:util/types'
import { monotonicMs } from '../../lib/clock'
import { OUR_ON_REQUEST, type FastifyInternals, type RouteContext } from './fastify'
import { PHASES, type RequestState, type StatefulResponse } from './state'
import { kResponseState } from '../../lib/symbols'

type AnyFn = (...args: any[]) => any

const HANDLER_PHASE = PHASES.indexOf('handler')
const PRE_PARSING = PHASES.indexOf('preParsing')
const PRE_SERIALIZATION = PHASES.indexOf('preSerialization')
const ON_SEND = PHASES.indexOf('onSend')
const HOOK_PHASES: ReadonlyMap<string, number> = new Map(PHASES.filter((p) => p !== 'handler').map((p) => [p, PHASES.indexOf(p)]))

/** One run of one timed hook: stopped by its `done`, its native promise, or the next step (beginStep). */
class HookRun {
  private readonly t0 = monotonicMs()
  private stopped = false
  constructor (private readonly state: RequestState, private readonly phase: number) {}

  stop (): void {
    if (this.stopped) return
    this.stopped = true
    const state = this.state
    try {
      if (state.pending === this) state.pending = null
      const ms = monotonicMs() - this.t0
      state.addPhase(this.phase, ms)
      state.hookTime += ms
    } catch (err) {
      state.inst.report(err)
    }
  }

  /** The hook failed (threw, rejected, or called `done` with an error). */
  fail (): void {
    this.state.hookFailed = true
    this.stop()
  }

  /** After the hook returned: unless it finished already, the next step ends it (see beginStep). */
  returned (): void {
    if (!this.stopped) this.state.pending = this
  }
}

/**
 * Fastify's next step for a request (a hook starts, the handler starts, the response ends): a
 * hook that returned without calling `done` and without a native promise (a thenable of its
 * own) has finished by now, since Fastify went on.
 */
function beginStep (state: RequestState): void {
  const pending = state.pending
  if (pending !== null) pending.stop()
}

/** The end of the response: a hook still pending, or a handler whose promise never reported back (a hijacked reply), ends with it. */
export function endPhases (state: RequestState): void {
  beginStep(state)
  stopHandler(state)
}

function startHandler (state: RequestState): void {
  beginStep(state)
  // The handler is timed only when a hook was timed before it: without hooks there is nothing to
  // break the request down into, and the handler's time is the request's duration less
  // Fastify's own work.
  if (state.done || state.phaseMask === 0 || state.hookFailed) return
  state.handlerStart = monotonicMs()
  state.handlerHooks = state.hookTime
}

function stopHandler (state: RequestState): void {
  if (state.handlerStart < 0) return
  state.addPhase(HANDLER_PHASE, monotonicMs() - state.handlerStart - (state.hookTime - state.handlerHooks))
  state.handlerStart = -1
}

/**
 * The handler's timing, from Fastify's `tracing:fastify.request.handler` channel: `start` before
 * Fastify calls the handler; `end` after it returned (or threw), with `async` true when it
 * returned a thenable; then `asyncStart` once that settled (not at all when the reply was
 * hijacked: the response's end stops the clock then). One shared subscriber for every
 * installation of this copy of the package, subscribed while one of them times hooks; it finds
 * the request's states on its raw response.
 */
const handlerChannel = diagnostics.tracingChannel('fastify.request.handler')
/** Installations that time phases (subscribed to handlerChannel while more than zero). */
let handlerSubscribers = 0
interface HandlerMessage { reply?: FastifyReply, async?: boolean }

/** Runs `step` for each installation's state of the handler's request (the message's reply). */
function forHandlerStates (message: unknown, step: (state: RequestState) => void): void {
  const reply = (message as HandlerMessage | null)?.reply
  const first = (reply?.raw as StatefulResponse | undefined)?.[kResponseState]
  if (first === undefined) return
  for (let s: RequestState | null = first; s !== null; s = s.next) {
    if (s.reply !== reply) continue
    try {
      step(s)
    } catch (err) {
      s.inst.report(err)
    }
  }
}

/** Subscribes to three of the five events (Node skips the missing ones; its types want all five). */
const handlerSubscriber = {
  start (message: unknown): void { forHandlerStates(message, startHandler) },
  end (message: unknown): void { if ((message as HandlerMessage | null)?.async !== true) forHandlerStates(message, stopHandler) },
  asyncStart (message: unknown): void { forHandlerStates(message, stopHandler) }
} as unknown as diagnostics.TracingChannelSubscribers<object>

const nativeThen = Promise.prototype.then
/** A promise of the engine's own (not a subclass, not a thenable): observing it runs no application code. */
function isNativePromise (value: unknown): value is Promise<unknown> {
  return isPromise(value) && Object.getPrototypeOf(value) === Promise.prototype
}

/** The phase timing of one installation: its request states live under `kState` on the request. */
export class PhaseTimer {
  private timesHandlers = false
  /** The hook arrays this installation has timed (a route's own 404 context shares its onSend array). */
  private readonly timedArrays = new WeakSet<unknown[]>()

  constructor (private readonly kState: symbol, private readonly internals: FastifyInternals) {}

  /**
   * Times the hooks of one route context: replaces, in place, each bound hook Fastify keeps in
   * the context's arrays (built at ready from the instance's and the route's hooks) by a timing
   * wrapper. Those arrays are Fastify's private copies: the functions the application registered,
   * its route options and what `onRoute` hooks see stay as they were. Runs on the context's first
   * request, from the plugin's onRequest hook; Fastify runs the arrays by index, so the hooks
   * after ours are timed from this very request on. Does nothing when fastify.ts found the
   * arrays not as expected.
   */
  timeRouteHooks (context: RouteContext): void {
    let timed = 0
    for (const [name, phase] of HOOK_PHASES) {
      const hooks = this.internals.hookArrayOf(context, name)
      if (hooks === null || this.timedArrays.has(hooks)) continue
      this.timedArrays.add(hooks)
      // onRequest: the hooks up to and including ours run before the request has a state.
      let from = 0
      if (name === 'onRequest') from = hooks.findIndex((fn) => typeof fn === 'function' && fn.name === OUR_ON_REQUEST) + 1
      for (let i = from; i < hooks.length; i++) {
        const fn = hooks[i]
        if (typeof fn !== 'function' || fn.name === OUR_ON_REQUEST) continue
        hooks[i] = this.timedHook(fn as AnyFn, phase)
        timed++
      }
    }
    if (timed > 0 && !this.timesHandlers) {
      this.timesHandlers = true
      if (handlerSubscribers++ === 0) handlerChannel.subscribe(handlerSubscriber)
    }
  }

  /** Stops timing handlers (the installation's app closes). */
  close (): void {
    if (this.timesHandlers && --handlerSubscribers === 0) handlerChannel.unsubscribe(handlerSubscriber)
    this.timesHandlers = false
  }

  /**
   * A timing wrapper for one of Fastify's bound hooks. It calls the hook with the same `this`
   * and arguments, except that a callback-style hook gets a `done` that stops the clock and then
   * calls Fastify's own with the same arguments; it returns what the hook returned and rethrows
   * what it threw. A returned value is looked at only when it is a native promise, observed with
   * the intrinsic Promise.prototype.then (no user code runs); for anything else the hook is
   * timed until Fastify's next step (beginStep). Same name as the hook, for printRoutes().
   */
  private timedHook (fn: AnyFn, phase: number): AnyFn {
    const kState = this.kState
    type StatefulRequest = FastifyRequest & Record<symbol, RequestState | null | undefined>
    const isAsync = fn.constructor?.name === 'AsyncFunction'
    const withPayload = phase === PRE_PARSING || phase === PRE_SERIALIZATION || phase === ON_SEND
    const run = (self: unknown, state: RequestState, args: unknown[], doneIndex: number): unknown => {
      beginStep(state)
      const hookRun = new HookRun(state, phase)
      if (!isAsync && typeof args[doneIndex] === 'function') {
        const done = args[doneIndex] as AnyFn
        args[doneIndex] = function (this: unknown, err?: unknown) {
          if (err) hookRun.fail()
          else hookRun.stop()
          return done.apply(this, arguments as unknown as unknown[])
        }
      }
      let result: unknown
      try {
        result = fn.apply(self, args)
      } catch (err) {
        hookRun.fail()
        throw err
      }
      if (isNativePromise(result)) {
        nativeThen.call(result, () => { hookRun.stop() }, () => { hookRun.fail() })
      } else {
        hookRun.returned()
      }
      return result
    }
    const wrapper = withPayload
      ? function (this: unknown, request: StatefulRequest, reply: unknown, payload: unknown, done: unknown): unknown {
        const state = request?.[kState]
        if (state === undefined || state === null || state.done) return fn.call(this, request, reply, payload, done)
        return run(this, state, [request, reply, payload, done], 3)
      }
      : function (this: unknown, request: StatefulRequest, reply: unknown, done: unknown): unknown {
        const state = request?.[kState]
        if (state === undefined || state === null || state.done) return fn.call(this, request, reply, done)
        return run(this, state, [request, reply, done], 2)
      }
    Object.defineProperty(wrapper, 'name', { value: fn.name })
    return wrapper
  }
}
