'use strict'
// MikroORM 6 (jest): setupFilesAfterEnv of the instrumented run (run.js writes the config).
// `@mikro-orm/core` is the test's own (jest maps it to packages/core/src); the harness itself is
// loaded with Node's require, once per worker.
const { createRequire } = require('node:module')
const { MikroORM } = require('@mikro-orm/core')
const instrument = createRequire(__filename)(process.env.FNM_MO_INSTRUMENT)
instrument.setup(MikroORM)
afterAll(() => instrument.report(expect.getState().testPath))
