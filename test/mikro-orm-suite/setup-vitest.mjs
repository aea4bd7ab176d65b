// MikroORM 7 (vitest): the last of setupFiles in the instrumented run (run.js writes the config),
// after the upstream tests/setup.ts has reset the module registry, so `@mikro-orm/core` is the
// instance the test file then imports. The harness itself is loaded with Node's require, once per
// worker (vitest runs files without isolation).
import { createRequire } from 'node:module'
import { afterAll, expect } from 'vitest'

const { MikroORM } = await import('@mikro-orm/core')
const instrument = createRequire(import.meta.url)(process.env.FNM_MO_INSTRUMENT)
instrument.setup(MikroORM)
afterAll(() => instrument.report(expect.getState().testPath))
