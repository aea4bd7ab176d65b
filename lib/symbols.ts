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
