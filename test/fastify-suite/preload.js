'use strict'
// Preloaded (node --require) into every test process of the Fastify-suite harness (run.js).
// Replaces the exports of the Fastify under test by a factory that creates the instance and then
// gives it this package, the way FNM_SUITE_MODE says:
// - register: app.register(plugin, options) right after creation, as a user would (it loads when
//   the app boots, after the test's own top-level routes and hooks were declared);
// - applied: the plugin function runs on the instance at once, so that it is fully installed
//   before the test adds any route or hook (what the README asks of users: register it first).
const { join } = require('node:path')

const mode = process.env.FNM_SUITE_MODE
const fastifyDir = process.env.FNM_SUITE_FASTIFY
if ((mode === 'register' || mode === 'applied') && fastifyDir) {
  const plugin = require(join(__dirname, '..', '..', 'dist', 'lib', 'index.js'))
  const options = Object.freeze({ enabled: true })
  const file = require.resolve(join(fastifyDir, 'fastify.js'))
  const real = require(file)
  const apply = mode === 'register'
    ? (app) => { app.register(plugin, options) }
    : (app) => {
        // The plugin's body runs synchronously up to its end (it awaits nothing); a rejection
        // would be a failure of the plugin itself, so it is made loud.
        plugin(app, options).catch((err) => { process.nextTick(() => { throw err }) })
      }
  const wrapped = function fastify (...args) {
    const app = real.apply(this, args)
    apply(app)
    return app
  }
  Object.defineProperties(wrapped, Object.getOwnPropertyDescriptors(real))
  wrapped.fastify = wrapped
  wrapped.default = wrapped
  require.cache[file].exports = wrapped
}
