'use strict'
// Inside a benchmark server (bench/server.js): samples every allocation, those garbage collected
// since included (V8's sampling heap profiler through the inspector), and times every garbage
// collection (the 'gc' performance entries) between 'alloc-start' and 'alloc-stop'; answers the
// parent (bench/alloc.js) with the bytes allocated per site and the collections.
const inspector = require('node:inspector')
const { PerformanceObserver } = require('node:perf_hooks')

let session = null
let observer = null
let gcs = []
let served0 = 0

function post (method, params) {
  return new Promise((resolve, reject) => session.post(method, params, (err, res) => err ? reject(err) : resolve(res)))
}

/** Folds the sampled allocation tree into bytes per function (`name url:line`). */
function sites (head) {
  const bytes = new Map()
  const walk = (node) => {
    const f = node.callFrame
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\//, '')}:${f.lineNumber + 1}`
    if (node.selfSize > 0) bytes.set(key, (bytes.get(key) ?? 0) + node.selfSize)
    for (const c of node.children) walk(c)
  }
  walk(head)
  return [...bytes].sort((a, b) => b[1] - a[1])
}

module.exports = {
  async 'alloc-start' (served) {
    session = new inspector.Session()
    session.connect()
    gcs = []
    observer = new PerformanceObserver((list) => { for (const e of list.getEntries()) gcs.push({ kind: e.detail?.kind ?? e.kind, ms: e.duration }) })
    observer.observe({ entryTypes: ['gc'] })
    await post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
    served0 = served()
    process.send({ alloc: 'started' })
  },
  async 'alloc-stop' (served) {
    const n = served() - served0
    const { profile } = await post('HeapProfiler.stopSampling')
    observer.disconnect()
    session.disconnect()
    const all = sites(profile.head)
    const total = all.reduce((t, [, b]) => t + b, 0)
    process.send({ alloc: 'stopped', requests: n, bytes: total, sites: all.slice(0, 60), gcs })
  }
}
