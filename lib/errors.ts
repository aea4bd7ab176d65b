/**
 * Every error this package throws, each with a stable `code` (the layout of Fastify core's
 * `lib/errors.js`). Option errors are `TypeError`s thrown at registration and name the option.
 * `docs/errors.md` documents every code; `test/errors.test.ts` keeps the two in step.
 */
import { format } from 'node:util'

/** An error with a stable `code` and the HTTP status Fastify would use if it ever reached a reply. */
export interface NetboxMetricsError extends Error {
  code: string
  statusCode: number
}

/** Constructor of a coded error; the arguments fill the message template. */
export interface NetboxMetricsErrorConstructor {
  new (...args: unknown[]): NetboxMetricsError
  (...args: unknown[]): NetboxMetricsError
  readonly code: string
}

function createError (code: string, template: string, Base: ErrorConstructor = Error): NetboxMetricsErrorConstructor {
  function CodedError (this: NetboxMetricsError | undefined, ...args: unknown[]): NetboxMetricsError {
    if (!new.target) return new (CodedError as unknown as NetboxMetricsErrorConstructor)(...args)
    const err = new Base(format(template, ...args)) as NetboxMetricsError
    Object.setPrototypeOf(err, new.target.prototype)
    err.name = 'NetboxMetricsError'
    err.code = code
    err.statusCode = 500
    return err
  }
  CodedError.prototype = Object.create(Base.prototype, {
    constructor: { value: CodedError, writable: true, configurable: true },
    [Symbol.toStringTag]: { value: 'Error' }
  })
  Object.defineProperty(CodedError, 'code', { value: code })
  return CodedError as unknown as NetboxMetricsErrorConstructor
}

/** An option has a wrong type or value. `%s` is the option's path, then what is wrong. */
export const FNM_ERR_OPTION_INVALID = createError('FNM_ERR_OPTION_INVALID', "Invalid option '%s': %s", TypeError)
/** An option name the plugin does not know (usually a typo). */
export const FNM_ERR_OPTION_UNKNOWN = createError('FNM_ERR_OPTION_UNKNOWN', "Unknown option '%s'", TypeError)
/** A route's `config.metrics` is neither `true` nor `false`. */
export const FNM_ERR_ROUTE_CONFIG_INVALID = createError('FNM_ERR_ROUTE_CONFIG_INVALID', "Invalid config.metrics on route '%s %s': expected a boolean, got %s", TypeError)
/** A metric family was defined twice in one registry with a different shape. */
export const FNM_ERR_METRIC_CONFLICT = createError('FNM_ERR_METRIC_CONFLICT', "Metric '%s' is already registered in this registry by something else", Error)
/** Wrong number of label values for a metric family. */
export const FNM_ERR_LABELS = createError('FNM_ERR_LABELS', "Metric '%s' expects %s label values, got %s", TypeError)
/** The multiprocess directory (`PROMETHEUS_MULTIPROC_DIR` or `multiprocess.dir`) is missing, not a directory or not writable. */
export const FNM_ERR_MULTIPROCESS_DIR = createError('FNM_ERR_MULTIPROCESS_DIR', "Multiprocess directory '%s' (from %s) is not usable: %s", Error)
/**
 * An environment variable the plugin reads has a value it does not accept (an empty value means
 * unset). `%s` is the variable, then its value, then what is accepted.
 */
export const FNM_ERR_ENV_INVALID = createError('FNM_ERR_ENV_INVALID', 'Invalid environment variable %s=%s: expected %s', TypeError)
/**
 * `instrumentCache()` cannot wrap a cache: one of its counted methods (`%s`) is a read-only,
 * non-configurable own property of an object that is not frozen, which neither a Proxy nor a
 * frozen twin can stand in for. Thrown when the cache is wrapped, never later.
 */
export const FNM_ERR_CACHE_UNWRAPPABLE = createError('FNM_ERR_CACHE_UNWRAPPABLE', "instrumentCache() cannot wrap this cache: its method '%s' is read-only and non-configurable (Object.defineProperty) on an object that is not frozen; freeze the whole object, or wrap an object that delegates to it", TypeError)
/**
 * Neither Prometheus client is installed (both are optional peer dependencies), or the one
 * found does not have the client API. Thrown at registration.
 */
export const FNM_ERR_CLIENT_MISSING = createError('FNM_ERR_CLIENT_MISSING', 'fastify-netbox-metrics needs a Prometheus client: install @prometheus-io/client (0.16 or later, Node 22+) or prom-client (15)', Error)
