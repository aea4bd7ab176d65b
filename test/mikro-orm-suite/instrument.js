'use strict'
// Applies fastify-netbox-metrics to every MikroORM that a MikroORM test creates, without editing
// the test, the way docs/orm.md tells users to: a `MetricsSubscriber` in the ORM's options and the
// plugin registered on a bare Fastify app with `{ orm }` once the ORM exists. Loaded by the setup
// files of the MikroORM-suite harness (setup-jest.js for v6, setup-vitest.mjs for v7), which pass
// the `MikroORM` class the test itself loads (MikroORM's own sources at that tag).
//
// - `MikroORM.init` (static; `@mikro-orm/postgresql` reaches it through `super.init`): the
//   subscriber is added to a copy of the options, and the plugin registered before init returns.
// - `MikroORM.initSync` (v6) also gets the subscriber; every other ORM (v6 initSync, v7's
//   synchronous `new MikroORM()`) is found when its entity manager is created and registered a
//   microtask later (the plugin then adds the subscriber itself).
// The package and Fastify are loaded with Node's own require (FNM_MO_PLUGIN is the package's main
// file), outside the test runner's module registry. After each test file (afterAll), every app
// has its counters read and is closed, and one JSON line per file goes to FNM_MO_PROOF: ORMs
// instrumented, statements and transactions counted, package errors (at attach, and after).
const { createRequire } = require('node:module')
const fs = require('node:fs')

const PATCHED = Symbol.for('fastify-netbox-metrics:mikro-orm-suite:patched')
const ATTACH_ERRORS = Symbol('errors counted at attach')

let pkg
let Fastify
function load () {
  if (pkg === undefined) {
    const main = process.env.FNM_MO_PLUGIN
    const req = createRequire(main)
    pkg = req(main)
    Fastify = req('fastify')
  }
  return pkg
}

const FAMILIES = { statements: 'db_execute_total', dbErrors: 'db_errors_total', transactions: 'db_transactions_total', errors: 'metrics_errors_total' }

/**
 * What one app counted, read from its registry's counters (no scrape: a scrape would run the
 * pool and migration collectors, which may query the ORM's database).
 */
async function counts (app) {
  const out = { statements: 0, dbErrors: 0, commits: 0, rollbacks: 0, errors: 0 }
  const registry = app.metrics.registry
  for (const [key, name] of Object.entries(FAMILIES)) {
    const metric = registry.getSingleMetric(name)
    if (metric === undefined) continue
    for (const { value, labels } of (await metric.get()).values) {
      if (key !== 'transactions') out[key] += value
      else if (labels.outcome === 'commit') out.commits += value
      else if (labels.outcome === 'rollback') out.rollbacks += value
    }
  }
  return out
}

/** The per-file record the setup file reports in afterAll. */
function newFile () {
  return { orms: 0, apps: [], attachFailures: [] }
}

let current = newFile()
const attached = new WeakMap()

function attach (orm) {
  let done = attached.get(orm)
  if (done !== undefined) return done
  const file = current
  file.orms++
  const plugin = load()
  const app = Fastify()
  file.apps.push(app)
  done = (async () => {
    try {
      await app.register(plugin.default ?? plugin, { enabled: true, defaultMetrics: false, orm })
      await app.ready()
      // Errors the package counted while attaching (a probe that found an internal missing).
      app[ATTACH_ERRORS] = (await counts(app)).errors
    } catch (err) {
      file.attachFailures.push(String(err && err.stack || err))
    }
  })()
  attached.set(orm, done)
  return done
}

function withSubscriber (options) {
  if (options === null || typeof options !== 'object') return options
  const proto = Object.getPrototypeOf(options)
  if (proto !== Object.prototype && proto !== null) return options // a Configuration: left alone
  return { ...options, subscribers: [...(options.subscribers ?? []), new (load().MetricsSubscriber)()] }
}

/** Patches this MikroORM class once (vitest without isolation loads it once per worker). */
function patch (MikroORM) {
  if (MikroORM[PATCHED]) return
  Object.defineProperty(MikroORM, PATCHED, { value: true })
  let initDepth = 0
  let pending = []
  const init = MikroORM.init
  MikroORM.init = async function init_ (options, ...rest) {
    initDepth++
    let orm
    try {
      orm = await init.call(this, withSubscriber(options), ...rest)
    } finally {
      initDepth--
    }
    await attach(orm)
    if (initDepth === 0 && pending.length > 0) {
      const left = pending
      pending = []
      for (const o of left) attach(o)
    }
    return orm
  }
  if (typeof MikroORM.initSync === 'function') {
    const initSync = MikroORM.initSync
    MikroORM.initSync = function initSync_ (options, ...rest) {
      return initSync.call(this, withSubscriber(options), ...rest)
    }
  }
  const create = MikroORM.prototype.createEntityManager
  MikroORM.prototype.createEntityManager = function createEntityManager_ (...args) {
    const r = create.apply(this, args)
    if (initDepth > 0) pending.push(this)
    else Promise.resolve(this).then(attach)
    return r
  }
}

/** Reads and closes this file's apps; appends one JSON line to FNM_MO_PROOF. */
async function report (testPath) {
  const file = current
  current = newFile()
  const total = { file: testPath, orms: file.orms, statements: 0, commits: 0, rollbacks: 0, dbErrors: 0, errors: 0, attachErrors: 0, attachFailures: file.attachFailures }
  for (const app of file.apps) {
    try {
      await app.ready()
      const s = await counts(app)
      for (const k of Object.keys(s)) total[k] += s[k]
      total.attachErrors += app[ATTACH_ERRORS] ?? 0
      await app.close()
    } catch (err) {
      total.attachFailures.push(`scrape: ${err && err.stack || err}`)
    }
  }
  if (process.env.FNM_MO_PROOF) fs.appendFileSync(process.env.FNM_MO_PROOF, JSON.stringify(total) + '\n')
}

/** Called by the setup file of each test file. */
function setup (MikroORM) {
  load()
  patch(MikroORM)
}

module.exports = { setup, report }
