/**
 * The shared directory's I/O: checking it, writing a file atomically, reading a snapshot back.
 * What the files contain is in `format.ts`.
 */
import { randomBytes } from 'node:crypto'
import { closeSync, fsyncSync, openSync, readSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FNM_ERR_MULTIPROCESS_DIR } from '../errors'
import type { MultiprocessConfig } from './config'
import { FORMAT, isFinalText, parseSnapshot, TMP_PREFIX, type ArchiveSnapshot, type ProcessSnapshot } from './format'
import { hostId, ownStart } from './identity'

/** A file that is not a well-formed snapshot (reported, never thrown into the app). */
export class ReadError extends Error {}

/**
 * Checks that `dir` is a directory this process can create, rename and remove files in.
 * @throws FNM_ERR_MULTIPROCESS_DIR otherwise
 */
export function checkDirectory (config: MultiprocessConfig): void {
  const { dir, source } = config
  let isDir: boolean
  try {
    isDir = statSync(dir).isDirectory()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new FNM_ERR_MULTIPROCESS_DIR(dir, source, code === 'ENOENT' ? 'it does not exist (create it, writable by every worker, before starting them)' : `it cannot be read (${code ?? String(err)})`)
  }
  if (!isDir) throw new FNM_ERR_MULTIPROCESS_DIR(dir, source, 'it is not a directory')
  const probe = join(dir, `${TMP_PREFIX}${hostId()}-${process.pid}-${ownStart()}-probe-${randomBytes(4).toString('hex')}`)
  try {
    writeFileSync(probe, '')
    renameSync(probe, `${probe}-renamed`)
    unlinkSync(`${probe}-renamed`)
  } catch (err) {
    try { unlinkSync(probe) } catch {}
    throw new FNM_ERR_MULTIPROCESS_DIR(dir, source, `it is not writable (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
  }
}

/** Whether a process file holds a final snapshot, from its first bytes. */
export function isFinalFile (path: string): boolean {
  try {
    const fd = openSync(path, 'r')
    try {
      const buf = Buffer.alloc(512)
      const n = readSync(fd, buf, 0, buf.length, 0)
      return isFinalText(buf.toString('utf8', 0, n))
    } finally {
      closeSync(fd)
    }
  } catch {
    return false
  }
}

/**
 * Writes `data` to `tmp`, optionally fsyncs it, and renames it to `path` (then fsyncs the
 * directory); the temporary file is removed when any step fails.
 */
export function writeAtomicSync (dir: string, tmp: string, path: string, data: string, durable: boolean): void {
  try {
    const fd = openSync(tmp, 'w')
    try {
      writeFileSync(fd, data)
      if (durable) fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
  } catch (err) {
    try { unlinkSync(tmp) } catch {}
    throw err
  }
  if (durable) {
    try {
      const d = openSync(dir, 'r')
      try { fsyncSync(d) } finally { closeSync(d) }
    } catch {}
  }
}

/**
 * A file's snapshot; undefined when it is gone (merged meanwhile), unreadable or malformed
 * (`onError` is told, except for a file that is gone).
 */
export async function readSnapshotFile<T extends ProcessSnapshot | ArchiveSnapshot> (dir: string, name: string, archive: boolean, onError: (err: unknown) => void): Promise<T | undefined> {
  let text: string
  try {
    text = await readFile(join(dir, name), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') onError(err)
    return undefined
  }
  const snap = parseSnapshot<T>(text, archive)
  if (snap === undefined) onError(new ReadError(`${name}: not a well-formed ${FORMAT} file; left out`))
  return snap
}
