/**
 * Symbols for the plugin's internal state, one place for all of them (the layout of
 * Fastify core's `lib/symbols.js`). Descriptions are namespaced by the package name.
 */

/** Per-request state object, set by the `onRequest` hook (`null` when the request is excluded). */
export const kRequestState = Symbol('fastify-netbox-metrics.request.state')
/** The request's state, on the raw response, for the shared end-of-response handlers and write counter. */
export const kResponseState = Symbol('fastify-netbox-metrics.response.state')
/** Marks a handler or hook function that this plugin has already wrapped for phase timing. */
export const kWrapped = Symbol('fastify-netbox-metrics.wrapped')
/**
 * Marks the multiprocess store's signal listener (lib/multiprocess.ts). A registered symbol, so
 * that two copies of the package loaded in one process recognise each other's listener as one
 * that only cleans up, not as the application's own handler.
 */
export const kPoliteSignalListener = Symbol.for('fastify-netbox-metrics.polite-signal-listener')
