'use strict'
// Preloaded (node --require) into every test process of the Fastify-suite harness (run.js).
// When the Fastify under test is first loaded, its exports are replaced by a factory that
// creates the instance and then gives it this package, the way FNM_SUITE_MODE says:
// - register: app.register(plugin, options) right after creation, as a user would (it loads when
//   the app boots, after the test's own top-level routes and hooks were declared);
// - applied: the plugin function runs on the instance at once, so that it is fully installed
//   before the test adds any route or hook (what the README asks of users: register it first).
// Nothing is loaded before the test loads Fastify: some tests stub Fastify's internal modules
// first.
const Module = require('node:module')
const { join } = require('node:path')

const mode = process.env.FNM_SUITE_MODE
const fastifyDir = process.env.FNM_SUITE_FASTIFY
if ((mode === 'register' || mode === 'applied') && fastifyDir) {
  const file = join(fastifyDir, 'fastify.js')
  const options = Object.freeze({ enabled: true })
  let plugin
  const apply = (app) => {
    // FNM_SUITE_PLUGIN: another build of the package (a checkout's directory), to compare versions.
    plugin ??= require(process.env.FNM_SUITE_PLUGIN || join(__dirname, '..', '..', 'dist', 'lib', 'index.js'))
    if (mode === 'register') {
      app.register(plugin, options)
    } else {
      // The plugin's body runs synchronously up to its end (it awaits nothing); a rejection
      // would be a failure of the plugin itself, so it is made loud.
      plugin(app, options).catch((err) => { process.nextTick(() => { throw err }) })
    }
  }
  const wrap = (real) => {
    const wrapped = function fastify (...args) {
      const app = real.apply(this, args)
      apply(app)
      return app
    }
    Object.defineProperties(wrapped, Object.getOwnPropertyDescriptors(real))
    wrapped.fastify = wrapped
    wrapped.default = wrapped
    return wrapped
  }
  // Wrapped once: whoever patches Module._load after this (proxyquire, for one) may keep calling
  // this function after it stood down.
  let installed = false
  const load = Module._load
  const ours = function (...args) {
    const exports = load.apply(this, args)
    if (installed) return exports
    const cached = require.cache[file]
    if (cached !== undefined && cached.loaded) {
      // Fastify is loaded: from now on every require() and import of it gets the wrapper.
      installed = true
      if (Module._load === ours) Module._load = load
      const real = cached.exports
      cached.exports = wrap(real)
      return exports === real ? cached.exports : exports
    }
    return exports
  }
  Module._load = ours
}
