/**
 * The clock of every duration this package measures.
 *
 * `performance.now()` would be the obvious choice, but on Node 20 each call first checks its
 * receiver through a stack-hiding validator (a rest-argument wrapper and an own-property lookup);
 * in a CPU profile of the request path the validator took more time than the clock read itself.
 * `process.hrtime()` reads the same monotonic clock with no validation when called without an
 * argument (it allocates a two-element array instead). The difference did not show in throughput:
 * on the benchmark VM the clock read itself dominates (docs/performance.md, "Where the time goes").
 */

// Read once: `process` is an accessor on the global object, and looking it up on every call cost
// about 140 instructions (callgrind, bench/instructions.js), more than the clock read. hrtime()
// does not use its receiver.
const { hrtime } = process

/** Milliseconds on a monotonic clock with sub-microsecond resolution; only differences are meaningful. */
export function monotonicMs (): number {
  const t = hrtime()
  return t[0] * 1e3 + t[1] / 1e6
}
