// Files in and out for the Node layer, refusing what would block, loop or exhaust memory:
//   readRegular  only regular files (a FIFO, a device or a directory is named as such; opened non-blocking, so a FIFO
//                never waits for a writer), at most `max` bytes
//   makeDir      creates a folder one level at a time (never a recursive mkdir that can loop, e.g. under /proc) and
//                proves it writable with a probe file, so an unwritable output folder fails before any work
import { closeSync, constants, fstatSync, mkdirSync, openSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';

/** A file that cannot be read or written as asked; the message names it and says why. */
export class FileError extends Error { constructor(message: string) { super(message); this.name = 'FileError'; } }

/** Largest file read whole (Node buffers stop at 4 GiB; camgpu's inputs are far smaller). */
export const MAX_FILE_BYTES = 2 ** 31;

/** errno codes in words. */
export function errno(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const why: Record<string, string> = {
    ENOENT: 'no such file or directory', EACCES: 'permission denied', EPERM: 'operation not permitted', EISDIR: 'it is a directory',
    ENOTDIR: 'a parent is not a directory', EROFS: 'read-only file system', ENOSPC: 'no space left on device', ELOOP: 'too many symbolic links',
    ENAMETOOLONG: 'file name too long', EMFILE: 'too many open files', EEXIST: 'it already exists', EINVAL: 'invalid argument',
  };
  return code ? why[code] ?? code : (e as Error).message;
}

function kindOf(st: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }) {
  return st.isDirectory() ? 'it is a directory' : st.isFIFO() ? 'it is a FIFO (named pipe), not a regular file'
    : st.isCharacterDevice() || st.isBlockDevice() ? 'it is a device, not a regular file' : st.isSocket() ? 'it is a socket, not a regular file' : 'it is not a regular file';
}

/** The bytes of a regular file (what: 'model', 'image', ... for the message); never blocks on a FIFO or device. */
export function readRegular(path: string, what: string, max = MAX_FILE_BYTES): Uint8Array {
  const fail = (why: string): never => { throw new FileError(`cannot read ${what} '${path}': ${why}`); };
  let fd: number;
  try { fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK); } catch (e) { return fail(errno(e)); }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) fail(kindOf(st));
    if (st.size > max) fail(`it is ${st.size} bytes, above the limit of ${max} bytes`);
    const buf = new Uint8Array(st.size);
    for (let at = 0; at < st.size;) {
      let n: number;
      try { n = readSync(fd, buf, at, st.size - at, at); } catch (e) { return fail(errno(e)); }
      if (n === 0) fail(`it shrank while being read (${at} of ${st.size} bytes)`);
      at += n;
    }
    return buf;
  } finally { closeSync(fd); }
}

/** The kind of a path for a message, or null when it does not exist. */
export function pathKind(path: string): 'file' | 'directory' | 'other' | null {
  try { const st = statSync(path); return st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other'; } catch { return null; }
}

/**
 * Creates `dir` and its missing parents one level at a time, then writes and removes a probe file in it: a folder
 * that cannot be created or written is one error naming it, before any work. A component that exists but is not a
 * folder, or that mkdir refuses (a read-only or virtual file system such as /proc), stops it at once.
 */
export function makeDir(dir: string, what = 'output folder'): void {
  const abs = resolve(dir), fail = (at: string, why: string): never => { throw new FileError(`cannot write to '${dir}': ${at === abs ? '' : `at '${at}': `}${why} (${what})`); };
  const parts = abs.split(sep).filter(Boolean);
  let at: string = sep;
  for (const p of parts) {
    at = join(at, p);
    let st;
    try { st = statSync(at); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') fail(at, errno(e));
      try { mkdirSync(at); } catch (e2) { if ((e2 as NodeJS.ErrnoException).code !== 'EEXIST') fail(at, errno(e2)); }
      try { st = statSync(at); } catch (e3) { return fail(at, `it is not there after mkdir (${errno(e3)})`); }
    }
    if (!st.isDirectory()) fail(abs, at === abs ? 'it exists and is not a directory' : `a parent is not a directory ('${at}')`);
  }
  const probe = join(abs, `.camgpu-probe-${process.pid}`);
  try { const fd = openSync(probe, 'wx'); try { writeSync(fd, 'x'); } finally { closeSync(fd); } unlinkSync(probe); }
  catch (e) { fail(abs, `not writable (${errno(e)})`); }
}

/** Fails before a long run when `path` could not be written: its folder must exist and be writable, and it must not be a folder. */
export function writableFile(path: string): void {
  const kind = pathKind(path);
  if (kind === 'directory') throw new FileError(`cannot write '${path}': it is a directory`);
  if (kind === 'other') throw new FileError(`cannot write '${path}': it is not a regular file`);
  const dir = dirname(resolve(path));
  const dk = pathKind(dir);
  if (dk !== 'directory') throw new FileError(`cannot write '${path}': ${dk === null ? `no such file or directory (folder '${dirname(path)}')` : `'${dirname(path)}' is not a directory`}`);
  const probe = join(dir, `.camgpu-probe-${process.pid}`);
  try { const fd = openSync(probe, 'wx'); closeSync(fd); unlinkSync(probe); } catch (e) { throw new FileError(`cannot write '${path}': ${errno(e)}`); }
}
