/**
 * The demo application: a small NetBox-like DCIM API (sites, racks, devices, interfaces) on
 * Fastify 5 + MikroORM 6 + PostgreSQL, instrumented with fastify-netbox-metrics.
 *
 * - `ormConfig(url)` is the MikroORM configuration (entities as `EntitySchema`s, the metrics
 *   subscriber, an instrumented result cache).
 * - `buildApp({ orm })` registers the metrics plugin first, then the routes under `/api/dcim/`.
 *
 * Every request works on its own fork of the entity manager (`orm.em.fork()`), as the MikroORM
 * docs recommend for request handlers.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import {
  Collection,
  defineConfig,
  EntitySchema,
  OptionalProps,
  ForeignKeyConstraintViolationException,
  MemoryCacheAdapter,
  NotNullConstraintViolationException,
  UniqueConstraintViolationException,
  type EntityManager,
  type MikroORM,
  type Options
} from '@mikro-orm/postgresql'
import { setTimeout as sleep } from 'node:timers/promises'
import netboxMetrics, { InstrumentedCacheAdapter } from '../lib/index'
import { landingPage } from './landing'

// The metrics subscriber, looked up at run time while the ORM half of the package lands
// (becomes a plain `import { MetricsSubscriber } from '../lib/index'`). Without it in the config,
// `register(netboxMetrics, { orm })` attaches one itself.
const MetricsSubscriber = (netboxMetrics as { MetricsSubscriber?: new () => object }).MetricsSubscriber

// ---------------------------------------------------------------------------------------------
// Entities (plain classes + EntitySchema: no decorators, no reflect-metadata)
// ---------------------------------------------------------------------------------------------

export class Site {
  id!: number
  name!: string
  slug!: string
  description?: string
  racks = new Collection<Rack>(this)
}

export class Rack {
  id!: number
  name!: string
  site!: Site
  uHeight: number = 42;
  [OptionalProps]?: 'uHeight'
  devices = new Collection<Device>(this)
}

export class Device {
  id!: number
  name!: string
  rack!: Rack
  role: string = 'server'
  status: string = 'active'
  serial?: string;
  [OptionalProps]?: 'role' | 'status'
  interfaces = new Collection<Interface>(this)
}

export class Interface {
  id!: number
  name!: string
  device!: Device
  type: string = '1000base-t'
  enabled: boolean = true
  mtu?: number;
  [OptionalProps]?: 'type' | 'enabled'
}

export const SiteSchema = new EntitySchema<Site>({
  class: Site,
  tableName: 'dcim_site',
  properties: {
    id: { type: 'number', primary: true },
    name: { type: 'string', unique: true },
    slug: { type: 'string', unique: true },
    description: { type: 'string', nullable: true },
    racks: { kind: '1:m', entity: () => Rack, mappedBy: 'site' }
  }
})

export const RackSchema = new EntitySchema<Rack>({
  class: Rack,
  tableName: 'dcim_rack',
  properties: {
    id: { type: 'number', primary: true },
    name: { type: 'string' },
    site: { kind: 'm:1', entity: () => Site },
    uHeight: { type: 'number', default: 42 },
    devices: { kind: '1:m', entity: () => Device, mappedBy: 'rack' }
  }
})

export const DeviceSchema = new EntitySchema<Device>({
  class: Device,
  tableName: 'dcim_device',
  properties: {
    id: { type: 'number', primary: true },
    name: { type: 'string', unique: true },
    rack: { kind: 'm:1', entity: () => Rack },
    role: { type: 'string', default: 'server' },
    status: { type: 'string', default: 'active' },
    serial: { type: 'string', nullable: true },
    interfaces: { kind: '1:m', entity: () => Interface, mappedBy: 'device', orphanRemoval: true }
  }
})

export const InterfaceSchema = new EntitySchema<Interface>({
  class: Interface,
  tableName: 'dcim_interface',
  properties: {
    id: { type: 'number', primary: true },
    name: { type: 'string' },
    device: { kind: 'm:1', entity: () => Device, deleteRule: 'cascade' },
    type: { type: 'string', default: '1000base-t' },
    enabled: { type: 'boolean', default: true },
    mtu: { type: 'number', nullable: true }
  }
})

export const entities = [SiteSchema, RackSchema, DeviceSchema, InterfaceSchema]

/**
 * The MikroORM configuration of the demo: the four entities, the metrics subscriber (the
 * complete way to count writes: forks with a fresh event manager see it too) and MikroORM's
 * result cache wrapped so that its hits and misses are counted under `cache="orm-result"`.
 */
export function ormConfig (clientUrl: string, extra: Options = {}): Options {
  return defineConfig({
    clientUrl,
    entities,
    subscribers: typeof MetricsSubscriber === 'function' ? [new MetricsSubscriber() as any] : [],
    resultCache: {
      adapter: InstrumentedCacheAdapter,
      options: { adapter: MemoryCacheAdapter, name: 'orm-result' }
    },
    pool: { min: 0, max: 10 },
    debug: false,
    ...extra
  })
}

// ---------------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------------

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'integer', minimum: 1 } }
} as const

const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
    offset: { type: 'integer', minimum: 0, default: 0 }
  }
} as const

const name = { type: 'string', minLength: 1, maxLength: 100 } as const
const fk = { type: 'integer', minimum: 1 } as const

interface ResourceDef {
  /** URL segment under /api/dcim/ */
  path: string
  entity: EntitySchema<any>
  /** JSON schema of the POST body (the PATCH body is the same, every property optional). */
  properties: Record<string, unknown>
  required: string[]
}

const resources: ResourceDef[] = [
  {
    path: 'sites',
    entity: SiteSchema,
    properties: { name, slug: { type: 'string', pattern: '^[a-z0-9-]+$', minLength: 1, maxLength: 100 }, description: { type: 'string', maxLength: 200 } },
    required: ['name', 'slug']
  },
  {
    path: 'racks',
    entity: RackSchema,
    properties: { name, site: fk, uHeight: { type: 'integer', minimum: 1, maximum: 100 } },
    required: ['name', 'site']
  },
  {
    path: 'devices',
    entity: DeviceSchema,
    properties: {
      name,
      rack: fk,
      role: { type: 'string', enum: ['server', 'switch', 'router', 'firewall', 'pdu'] },
      status: { type: 'string', enum: ['active', 'planned', 'offline', 'failed'] },
      serial: { type: 'string', maxLength: 50 }
    },
    required: ['name', 'rack']
  },
  {
    path: 'interfaces',
    entity: InterfaceSchema,
    properties: { name, device: fk, type: { type: 'string', maxLength: 50 }, enabled: { type: 'boolean' }, mtu: { type: 'integer', minimum: 68, maximum: 65535 } },
    required: ['name', 'device']
  }
]

/** Options of `buildApp`. */
export interface BuildAppOptions {
  orm: MikroORM
  /** Fastify server options (logger, ...). */
  fastify?: FastifyServerOptions
}

/** A cached device lookup, as served by `GET /api/dcim/devices/by-name/:name`. */
interface DeviceLookup { id: number, name: string, rack: number, status: string }

/** Builds the demo API. The metrics plugin is registered first so it sees every request. */
export async function buildApp ({ orm, fastify }: BuildAppOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, ...fastify })
  await app.register(netboxMetrics, { enabled: true, orm })

  // Middleware, as NetBox has it: a request id on every response (timed as the onRequest phase)
  // and a token check on writes (timed as the preHandler phase).
  let nextRequestId = 0
  app.addHook('onRequest', (_request, reply, done) => {
    void reply.header('x-request-id', String(++nextRequestId))
    done()
  })
  app.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'GET' && request.method !== 'HEAD' && request.headers['x-demo-readonly'] === '1') {
      await reply.code(403).send({ error: 'read-only token' })
    }
  })

  // A request-scoped entity manager: one fork per request, created on first use.
  const forks = new WeakMap<object, EntityManager>()
  const emFor = (request: object): EntityManager => {
    let em = forks.get(request)
    if (em === undefined) {
      em = orm.em.fork()
      forks.set(request, em)
    }
    return em
  }

  // An application cache, counted under cache="device-lookups".
  const deviceLookups = app.metrics.instrumentCache(new Map<string, DeviceLookup>(), { name: 'device-lookups' })

  // Database errors become HTTP answers; the error still counts in http_exceptions_total and
  // db_errors_total (the hooks run before this handler).
  app.setErrorHandler(async (err, _request, reply) => {
    if (err instanceof UniqueConstraintViolationException) {
      return await reply.code(409).send({ statusCode: 409, error: 'Conflict', message: 'an object with this name already exists' })
    }
    if (err instanceof ForeignKeyConstraintViolationException) {
      return await reply.code(409).send({ statusCode: 409, error: 'Conflict', message: 'the object is referenced by, or references, a missing object' })
    }
    if (err instanceof NotNullConstraintViolationException) {
      return await reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: 'a required field is missing' })
    }
    const status = typeof (err as { statusCode?: unknown }).statusCode === 'number' ? (err as { statusCode: number }).statusCode : 500
    if (status >= 500) app.log.error({ err }, 'request failed')
    return await reply.code(status).send({ statusCode: status, error: status >= 500 ? 'Internal Server Error' : 'Bad Request', message: (err as Error).message })
  })

  // The landing page: what the demo is, links to /metrics and the API, what to try.
  const landing = landingPage()
  app.get('/', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(landing))
  app.get('/health', { config: { metrics: false } }, async () => ({ status: 'ok' }))

  // NetBox's /api/status/; `delay` (ms) makes a slow request, used by the traffic generator to
  // produce client aborts.
  app.get<{ Querystring: { delay: number } }>('/api/status', {
    schema: { querystring: { type: 'object', properties: { delay: { type: 'integer', minimum: 0, maximum: 5000, default: 0 } } } }
  }, async (request) => {
    if (request.query.delay > 0) await sleep(request.query.delay)
    const em = emFor(request)
    const [sites, racks, devices, interfaces] = await Promise.all([
      em.count(Site), em.count(Rack), em.count(Device), em.count(Interface)
    ])
    return { 'fastify-version': app.version, 'node-version': process.version, counts: { sites, racks, devices, interfaces } }
  })

  await app.register(async (dcim) => {
    // Special device routes first (static segments win over /:id in find-my-way anyway).

    // Bulk import: em.insertMany, one multi-row INSERT, no unit of work.
    dcim.post<{ Body: Array<{ name: string, rack: number, role?: string, status?: string, serial?: string }> }>('/devices/bulk', {
      schema: {
        body: {
          type: 'array',
          minItems: 1,
          maxItems: 1000,
          items: { type: 'object', additionalProperties: false, required: ['name', 'rack'], properties: resources[2].properties }
        }
      }
    }, async (request, reply) => {
      const em = emFor(request)
      const rows = request.body.map((d) => ({ role: 'server', status: 'active', ...d }))
      const ids = await em.insertMany(Device, rows as any[])
      return await reply.code(201).send({ created: ids.length, ids })
    })

    // Search with a query parameter (NetBox's `?q=`), plus filters.
    dcim.get<{ Querystring: { q?: string, status?: string, rack?: number, limit: number, offset: number } }>('/devices', {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            q: { type: 'string', maxLength: 100 },
            status: { type: 'string', enum: ['active', 'planned', 'offline', 'failed'] },
            rack: fk,
            limit: listQuery.properties.limit,
            offset: listQuery.properties.offset
          }
        }
      }
    }, async (request) => {
      const { q, status, rack, limit, offset } = request.query
      const where: Record<string, unknown> = {}
      if (q !== undefined && q !== '') where.name = { $ilike: `%${q.replace(/[\\%_]/g, (c) => '\\' + c)}%` }
      if (status !== undefined) where.status = status
      if (rack !== undefined) where.rack = rack
      const [results, count] = await emFor(request).findAndCount(Device, where, { limit, offset, orderBy: { id: 'asc' } })
      return { count, results }
    })

    // A lookup through the application cache (cache="device-lookups").
    dcim.get<{ Params: { name: string } }>('/devices/by-name/:name', {
      schema: { params: { type: 'object', required: ['name'], properties: { name } } }
    }, async (request, reply) => {
      const key = request.params.name
      const cached = deviceLookups.get(key)
      if (cached !== undefined) return cached
      const d = await emFor(request).findOne(Device, { name: key })
      if (d === null) return await reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'no such device' })
      const lookup: DeviceLookup = { id: d.id, name: d.name, rack: d.rack.id, status: d.status }
      deviceLookups.set(key, lookup)
      return lookup
    })

    // Replaces a device's interfaces: the ones left out are orphan-removed (deleted).
    dcim.put<{ Params: { id: number }, Body: Array<{ name: string, type?: string, enabled?: boolean, mtu?: number }> }>('/devices/:id/interfaces', {
      schema: {
        params: idParams,
        body: {
          type: 'array',
          maxItems: 100,
          items: { type: 'object', additionalProperties: false, required: ['name'], properties: { name, type: { type: 'string', maxLength: 50 }, enabled: { type: 'boolean' }, mtu: { type: 'integer', minimum: 68, maximum: 65535 } } }
        }
      }
    }, async (request, reply) => {
      const em = emFor(request)
      const device = await em.findOne(Device, request.params.id, { populate: ['interfaces'] })
      if (device === null) return await reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'no such device' })
      const keep = new Map(device.interfaces.getItems().map((i) => [i.name, i]))
      const next = request.body.map((data) => {
        const existing = keep.get(data.name)
        return existing !== undefined ? em.assign(existing, data) : em.create(Interface, { ...data, device })
      })
      device.interfaces.set(next)
      await em.flush()
      return device.interfaces.getItems()
    })

    // Sites: an upsert by slug (em.upsert).
    dcim.put<{ Params: { slug: string }, Body: { name: string, description?: string } }>('/sites/by-slug/:slug', {
      schema: {
        params: { type: 'object', required: ['slug'], properties: { slug: { type: 'string', pattern: '^[a-z0-9-]+$', maxLength: 100 } } },
        body: { type: 'object', additionalProperties: false, required: ['name'], properties: { name, description: { type: 'string', maxLength: 200 } } }
      }
    }, async (request) => {
      return await emFor(request).upsert(Site, { slug: request.params.slug, ...request.body }, { onConflictFields: ['slug'] })
    })

    // Generic CRUD for every resource.
    for (const r of resources) {
      const entity = r.entity
      const createBody = { type: 'object', additionalProperties: false, required: r.required, properties: r.properties }
      const patchBody = { type: 'object', additionalProperties: false, minProperties: 1, properties: r.properties }

      if (r.path === 'sites') {
        // The list of sites is read through MikroORM's result cache (cache="orm-result").
        dcim.get<{ Querystring: { limit: number, offset: number } }>('/sites', { schema: { querystring: listQuery } }, async (request) => {
          const { limit, offset } = request.query
          const results = await emFor(request).find(Site, {}, { limit, offset, orderBy: { id: 'asc' }, cache: 1000 })
          return { count: results.length, results }
        })
      } else if (r.path !== 'devices') {
        dcim.get<{ Querystring: { limit: number, offset: number } }>(`/${r.path}`, { schema: { querystring: listQuery } }, async (request) => {
          const { limit, offset } = request.query
          const [results, count] = await emFor(request).findAndCount(entity, {}, { limit, offset, orderBy: { id: 'asc' } })
          return { count, results }
        })
      }

      dcim.get<{ Params: { id: number } }>(`/${r.path}/:id`, { schema: { params: idParams } }, async (request, reply) => {
        const found = await emFor(request).findOne(entity, request.params.id)
        if (found === null) return await reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no such ${r.path.slice(0, -1)}` })
        return found
      })

      dcim.post<{ Body: Record<string, unknown> }>(`/${r.path}`, { schema: { body: createBody } }, async (request, reply) => {
        const em = emFor(request)
        const created = em.create(entity, request.body)
        await em.flush() // a duplicate device name fails here: UniqueConstraintViolationException -> 409
        return await reply.code(201).send(created)
      })

      dcim.patch<{ Params: { id: number }, Body: Record<string, unknown> }>(`/${r.path}/:id`, { schema: { params: idParams, body: patchBody } }, async (request, reply) => {
        const em = emFor(request)
        const found = await em.findOne(entity, request.params.id)
        if (found === null) return await reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no such ${r.path.slice(0, -1)}` })
        const oldName = (found as { name?: string }).name
        em.assign(found, request.body)
        await em.flush()
        if (r.path === 'devices' && oldName !== undefined) deviceLookups.delete(oldName)
        return found
      })

      dcim.delete<{ Params: { id: number } }>(`/${r.path}/:id`, { schema: { params: idParams } }, async (request, reply) => {
        const em = emFor(request)
        // Devices are loaded with their interfaces so the ORM removes them (orphan removal).
        const found = await em.findOne(entity, request.params.id, r.path === 'devices' ? { populate: ['interfaces'] as never } : {})
        if (found === null) return await reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no such ${r.path.slice(0, -1)}` })
        em.remove(found)
        await em.flush() // deleting a site that still has racks fails: FK violation -> 409
        if (r.path === 'devices') deviceLookups.delete((found as Device).name)
        return await reply.code(204).send()
      })
    }
  }, { prefix: '/api/dcim' })

  return app
}

/** Seeds a few sites, racks, devices and interfaces (idempotent only on an empty schema). */
export async function seed (orm: MikroORM): Promise<{ sites: number, racks: number, devices: number, interfaces: number }> {
  const em = orm.em.fork()
  const counts = { sites: 0, racks: 0, devices: 0, interfaces: 0 }
  for (const [siteName, slug] of [['Amsterdam DC1', 'ams1'], ['Frankfurt DC2', 'fra2'], ['London DC3', 'lon3']]) {
    const site = em.create(Site, { name: siteName, slug, description: `${siteName} data centre` })
    counts.sites++
    for (let r = 1; r <= 2; r++) {
      const rack = em.create(Rack, { name: `${slug}-r${r}`, site, uHeight: 42 })
      counts.racks++
      for (let d = 1; d <= 4; d++) {
        const role = d === 1 ? 'switch' : 'server'
        const device = em.create(Device, { name: `${slug}-r${r}-${role}${d}`, rack, role, status: 'active', serial: `SN${slug.toUpperCase()}${r}${d}` })
        counts.devices++
        for (let i = 0; i < (role === 'switch' ? 8 : 2); i++) {
          em.create(Interface, { name: `eth${i}`, device, type: role === 'switch' ? '10gbase-x-sfpp' : '1000base-t', enabled: true })
          counts.interfaces++
        }
      }
    }
  }
  await em.flush()
  return counts
}
