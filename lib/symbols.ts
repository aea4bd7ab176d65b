/**
 * Symbols for the plugin's internal state, one place for all of them (the layout of
 * Fastify core's `lib/symbols.js`). Descriptions are namespaced by the package name.
 */

/**
 * A new key for one installation's per-request state, set by its `onRequest` hook (`null` when the
 * request is excluded). One per installation, so that installations never share a slot,
 * whichever copy of the package they come from.
 */
export function requestStateKey (): symbol {
  return Symbol('fastify-netbox-metrics.request.state')
}
/**
 * The first state of the raw response, for the shared end-of-response handlers, the handler
 * channel and the write counter; the states of other installations serving the same response
 * are chained behind it.
 */
export const kResponseState = Symbol('fastify-netbox-metrics.response.state')
/**
 * Marks the multiprocess store's signal listener (lib/multiprocess/exit.ts). A registered symbol, so
 * that two copies of the package loaded in one process recognise each other's listener as one
 * that only cleans up, not as the application's own handler.
 */
export const kPoliteSignalListener = Symbol.for('fastify-netbox-metrics.polite-signal-listener')
