/**
 * The archive of the processes that have exited (docs/multiprocess.md, "Merging dead processes:
 * the archive"): their files merged into `fnm-archive.json` under an O_EXCL lock, then removed.
 * Synchronous, so no other work of this process interleaves with a merge.
 */
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { Aggregate } from './aggregate'
import { ARCHIVE_FILE, BREAKER_FILE, FORMAT, idOfFile, LOCK_FILE, parseSnapshot, PROCESS_FILE, processFileName, serializeSnapshot, TMP_FILE, VERSION, type ArchiveSnapshot, type ProcessSnapshot } from './format'
import { isFinalFile, ReadError, writeAtomicSync } from './files'
import { processAlive } from './identity'

/** A merged file's id stays recorded in the archive at least this long (a slow scrape's window). */
const MERGED_ID_TTL_MS = 10 * 60_000
/** A breaker file older than this was left by a process that died while breaking a stale lock. */
const STALE_BREAKER_MS = 10_000
/** A lock of another host (or unreadable) older than this is considered abandoned. */
const STALE_FOREIGN_LOCK_MS = 60_000

/** Who merges: the store's identity in the directory. */
export interface ArchiveOwner {
  readonly dir: string
  /** The node id (`identity.ts`). */
  readonly host: string
  readonly pstart: string
  /** The store id (its file is `fnm-<id>.json`). */
  readonly id: string
  /** A new temporary file name of this store. */
  tmpName: () => string
  onError: (err: unknown) => void
}

/** The archive as one store sees it: merges, lock, recovery. */
export class Archive {
  /** A scrape found the archive unreadable: the next merge sets it aside. */
  suspect = false

  constructor (private readonly owner: ArchiveOwner) {}

  /**
   * Merges the files of dead processes into the archive, then removes them: of this node, those
   * whose process is gone; of other nodes (other pid namespaces, boots or hosts, whose processes
   * cannot be asked), those holding a final snapshot. With `self`, the owner's own file too.
   * Removes temporary files of dead processes of this node. Returns false when the lock was held
   * by a live process (try again later).
   */
  maintain (self = false): boolean {
    const { dir, host, id } = this.owner
    try {
      const names = readdirSync(dir)
      const dead: string[] = []
      const tmps: string[] = []
      const own = processFileName(id)
      for (const n of names) {
        const m = PROCESS_FILE.exec(n)
        if (m !== null) {
          if (n === own) { if (self) dead.push(n); continue }
          if (m[1] === host ? !processAlive(Number(m[2]), m[3]) : isFinalFile(join(dir, n))) dead.push(n)
          continue
        }
        const t = TMP_FILE.exec(n)
        if (t !== null && t[1] === host && !processAlive(Number(t[2]), t[3])) tmps.push(n)
      }
      for (const n of tmps) { try { unlinkSync(join(dir, n)) } catch {} }
      if (dead.length === 0 && !this.suspect) return true
      if (!this.lock()) return false
      try {
        this.mergeLocked(dead)
      } finally {
        this.unlock()
      }
      return true
    } catch (err) {
      this.owner.onError(err)
      return true
    }
  }

  /**
   * The archive, or undefined when there is none. A torn or corrupt archive is set aside
   * (renamed to `fnm-archive.corrupt-<time>-<random>.json`) and reported: the totals it held
   * are lost, the merges go on.
   */
  private readLocked (archivePath: string): { archive: ArchiveSnapshot | undefined, setAside: boolean } {
    let text: string
    try {
      text = readFileSync(archivePath, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { archive: undefined, setAside: false }
      throw err
    }
    const archive = parseSnapshot<ArchiveSnapshot>(text, true)
    if (archive !== undefined) return { archive, setAside: false }
    const aside = `fnm-archive.corrupt-${Date.now()}-${randomBytes(3).toString('hex')}.json`
    renameSync(archivePath, join(this.owner.dir, aside))
    this.owner.onError(new ReadError(`${ARCHIVE_FILE} is torn or corrupt; set aside as ${aside} (the totals of the processes it held are lost)`))
    return { archive: undefined, setAside: true }
  }

  private mergeLocked (dead: string[]): void {
    const { dir } = this.owner
    const now = Date.now()
    const archivePath = join(dir, ARCHIVE_FILE)
    const { archive, setAside } = this.readLocked(archivePath)
    this.suspect = false
    const merged: Record<string, number> = { ...(archive?.merged ?? {}) }
    const agg = new Aggregate(() => { this.owner.onError(new Error('a dead process file disagrees with the archive on a metric\'s type or labels; that metric is left out')) }, true)
    if (archive !== undefined) agg.addFamilies(archive.families, 'dead', 0)
    const done: string[] = []
    let changed = setAside
    for (const n of dead) {
      const id = idOfFile(n)
      done.push(n)
      if (merged[id] !== undefined) continue // merged before a crash, not yet removed
      let text: string
      try {
        text = readFileSync(join(dir, n), 'utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') { done.pop(); continue }
        text = ''
      }
      const snap = parseSnapshot<ProcessSnapshot>(text, false)
      if (snap === undefined) {
        this.owner.onError(new ReadError(`${n}: not a well-formed ${FORMAT} file; removed`))
        continue
      }
      agg.addFamilies(snap.families, 'dead', 0)
      merged[id] = now
      changed = true
    }
    for (const id of Object.keys(merged)) {
      if (now - merged[id] < MERGED_ID_TTL_MS) continue
      let exists = true
      try { statSync(join(dir, processFileName(id))) } catch { exists = false }
      if (!exists) { delete merged[id]; changed = true }
    }
    if (changed) writeAtomicSync(dir, this.owner.tmpName(), archivePath, serializeSnapshot({ format: `${FORMAT}/archive`, v: VERSION, merged, families: agg.toSnapshots() }), true)
    for (const n of done) { try { unlinkSync(join(dir, n)) } catch {} }
  }

  private lockContent (): string {
    return JSON.stringify({ host: this.owner.host, pid: process.pid, pstart: this.owner.pstart, id: this.owner.id, at: Date.now() })
  }

  /** Takes the archive lock (an O_EXCL file), breaking it when its holder is dead. */
  private lock (): boolean {
    const path = join(this.owner.dir, LOCK_FILE)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx')
        try { writeSync(fd, this.lockContent()) } finally { closeSync(fd) }
        return true
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      if (!this.breakStaleLock(path)) return false
    }
    return false
  }

  /** The lock's content when its holder is dead (or it is abandoned), else undefined. */
  private lockIsStale (path: string): string | undefined {
    let text: string
    let age: number
    try {
      text = readFileSync(path, 'utf8')
      age = Date.now() - statSync(path).mtimeMs
    } catch {
      return undefined
    }
    let holder: { host?: string, pid?: number, pstart?: string } | undefined
    try { holder = JSON.parse(text) } catch {}
    if (holder === undefined || typeof holder.pid !== 'number') return age > STALE_BREAKER_MS ? text : undefined
    if (holder.host === this.owner.host) return processAlive(holder.pid, String(holder.pstart ?? '0')) ? undefined : text
    return age > STALE_FOREIGN_LOCK_MS ? text : undefined
  }

  /**
   * Removes a lock left by a dead process. Breaking happens under a second O_EXCL file and
   * re-checks the lock's content, so two processes never both break the lock and both take it.
   */
  private breakStaleLock (path: string): boolean {
    const stale = this.lockIsStale(path)
    if (stale === undefined) return false
    const breaker = join(this.owner.dir, BREAKER_FILE)
    try {
      closeSync(openSync(breaker, 'wx'))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      try { if (Date.now() - statSync(breaker).mtimeMs > STALE_BREAKER_MS) unlinkSync(breaker) } catch {}
      return false
    }
    try {
      let current: string | undefined
      try { current = readFileSync(path, 'utf8') } catch {}
      if (current === stale) unlinkSync(path)
      return true
    } finally {
      try { unlinkSync(breaker) } catch {}
    }
  }

  private unlock (): void {
    const path = join(this.owner.dir, LOCK_FILE)
    try {
      const holder = JSON.parse(readFileSync(path, 'utf8')) as { id?: string }
      if (holder.id === this.owner.id) unlinkSync(path)
    } catch {}
  }
}
