// credlock:store/files — whole reads and atomic durable replaces: host/src/files.rs in JS.
//
// What we assume of the filesystem (FORMAT.md): rename(2) within a directory is atomic;
// data is durable after fsync of the file, and a rename or link after fsync of the
// directory; link(2) is atomic and fails if the name exists.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { ensurePrivateDir, ioError, syncDir } from './os.js';
import { hit } from '../failpoints.js';

/** The largest store file read (files.rs MAX_STORE_BYTES). */
export const MAX_STORE_BYTES = 16 * 1024 * 1024;

/**
 * How many `-1`, `-2`, ... suffixes `quarantine` tries before giving up: more files
 * quarantined within one millisecond than this means something is looping.
 */
export const MAX_QUARANTINE_SUFFIX = 1000;

const C = fs.constants;
// O_NONBLOCK: a FIFO at the path must not hang the open; it is refused by the fstat below.
const READ_FLAGS = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
const CREATE_FLAGS = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;

const fileErr = (e, p) => ({ payload: { tag: 'io', val: ioError(e, p) } });
const notRegular = (detail) => ({ payload: { tag: 'io', val: { tag: 'not-a-regular-file', val: detail } } });

/**
 * The whole file, or `null` if it does not exist. Refuses symlinks and non-regular files.
 * Throws `{ payload: file-error }`.
 */
export function readFile(p, maxBytes) {
  let fd;
  try {
    fd = fs.openSync(p, READ_FLAGS);
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    throw fileErr(e, p);
  }
  try {
    let st;
    try {
      st = fs.fstatSync(fd);
    } catch (e) {
      throw fileErr(e, p);
    }
    if (!st.isFile()) throw notRegular(p);
    if (st.size > maxBytes) throw { payload: { tag: 'too-large', val: BigInt(st.size) } };
    // The file is never written in place (only replaced), so this reads one version.
    const chunks = [];
    let total = 0;
    let buf = Buffer.allocUnsafe(Math.min(st.size, maxBytes) + 1);
    for (;;) {
      let n;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if (e.code === 'EAGAIN') continue;
        throw fileErr(e, p);
      }
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > maxBytes) throw { payload: { tag: 'too-large', val: BigInt(total) } };
      buf = Buffer.allocUnsafe(64 * 1024);
    }
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
  } finally {
    fs.closeSync(fd);
  }
}

/** `.NAME.TAG-PID-RANDOM` beside `target` (files.rs `temp_name`). */
export function tempName(target, tag) {
  const name = path.basename(target) || 'file';
  return path.join(path.dirname(target), `.${name}.${tag}-${process.pid}-${crypto.randomBytes(8).toString('hex')}`);
}

function removeQuietly(p) {
  try {
    fs.unlinkSync(p);
  } catch { /* it may not exist */ }
}

/** Create `p` exclusively (0600, no symlink follow), write `contents`, fsync. */
function writeNew(p, contents) {
  const fd = fs.openSync(p, CREATE_FLAGS, 0o600);
  try {
    let off = 0;
    while (off < contents.length) off += fs.writeSync(fd, contents, off, contents.length - off);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Refuse to replace a symlink: writing through one could land anywhere. */
function checkNotSymlink(p) {
  let st;
  try {
    st = fs.lstatSync(p);
  } catch {
    return;
  }
  if (st.isSymbolicLink() || !st.isFile()) throw notRegular(`${p}: not a regular file (refused)`);
}

function keepBackup(target, backup) {
  const linkTmp = tempName(backup, 'tmp');
  try {
    fs.linkSync(target, linkTmp);
  } catch (e) {
    if (e.code === 'ENOENT') return;
    throw fileErr(e, backup);
  }
  try {
    fs.renameSync(linkTmp, backup);
  } catch (e) {
    removeQuietly(linkTmp);
    throw fileErr(e, backup);
  }
  // The directory fsync after the main rename makes this durable too.
}

/**
 * Replace `target` with `contents` atomically and durably; if `backup` is given and `target`
 * exists, its current version becomes `backup` first (a hard link: files are never modified
 * in place, so the old inode is exactly the old version).
 */
export function replaceFile(target, contents, backup) {
  const dir = path.dirname(target);
  checkNotSymlink(target);
  const tmp = tempName(target, 'tmp');
  try {
    writeNew(tmp, contents);
  } catch (e) {
    removeQuietly(tmp);
    throw fileErr(e, target);
  }
  if (backup) {
    try {
      keepBackup(target, backup);
    } catch (e) {
      removeQuietly(tmp);
      throw e;
    }
  }
  hit('replace:before-rename');
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    removeQuietly(tmp);
    throw fileErr(e, target);
  }
  try {
    syncDir(dir);
  } catch (e) {
    throw fileErr(e, dir);
  }
}

/** Remove `p` durably; missing is fine. */
export function removeFile(p) {
  try {
    fs.unlinkSync(p);
  } catch (e) {
    if (e.code === 'ENOENT') return;
    throw fileErr(e, p);
  }
  const dir = path.dirname(p);
  try {
    syncDir(dir);
  } catch (e) {
    throw fileErr(e, dir);
  }
}

/**
 * Move `p` aside to `<name>.corrupt-<nowMs>` in the same directory (then `-1`, `-2`, ... if
 * that name exists), durably; return the new name (a name, not a path).
 *
 * link(2) then unlink(2), not rename(2): link fails if the name exists, so nothing is ever
 * replaced, whoever else creates files there. A crash between the two leaves both names on
 * the one inode: nothing is lost, and the store is still where it was. The contents are
 * never read, copied or rewritten; a symlink is moved as itself (link does not follow it).
 */
export function quarantineFile(p, nowMs) {
  const dir = path.dirname(p);
  const base = `${path.basename(p)}.corrupt-${nowMs}`;
  let name = null;
  for (let n = 0; n <= MAX_QUARANTINE_SUFFIX && name === null; n++) {
    const candidate = n === 0 ? base : `${base}-${n}`;
    try {
      fs.linkSync(p, path.join(dir, candidate));
      name = candidate;
    } catch (e) {
      if (e.code === 'EEXIST') continue;
      throw fileErr(e, p); // ENOENT included: quarantining a missing file is an error
    }
  }
  if (name === null) {
    throw { payload: { tag: 'io', val: { tag: 'other', val: `${p}: every quarantine name up to ${base}-${MAX_QUARANTINE_SUFFIX} exists` } } };
  }
  try {
    fs.unlinkSync(p);
  } catch (e) {
    // Undo the link so that a failed quarantine leaves things as they were.
    removeQuietly(path.join(dir, name));
    throw fileErr(e, p);
  }
  try {
    syncDir(dir);
  } catch (e) {
    throw fileErr(e, dir);
  }
  return name;
}

/**
 * Create `p` with `contents` only if it does not exist, atomically (temp + link) and
 * durably; false if it existed. Used for the key file: two processes creating it at once
 * must end up with one key.
 */
export function createExclusive(p, contents) {
  const dir = path.dirname(p);
  const tmp = tempName(p, 'new');
  try {
    writeNew(tmp, contents);
  } catch (e) {
    removeQuietly(tmp);
    throw fileErr(e, p);
  }
  let linked = null;
  try {
    fs.linkSync(tmp, p);
  } catch (e) {
    linked = e;
  }
  removeQuietly(tmp);
  if (linked === null) {
    try {
      syncDir(dir);
    } catch (e) {
      throw fileErr(e, dir);
    }
    return true;
  }
  if (linked.code === 'EEXIST') return false;
  throw fileErr(linked, p);
}

/** The `files` import for one store directory. */
export function makeFiles(dir) {
  const store = path.join(dir, 'credentials.sealed');
  const backup = path.join(dir, 'credentials.sealed.bak');
  const pathOf = (file) => {
    if (file === 'store') return store;
    if (file === 'backup') return backup;
    throw new TypeError(`unknown store file ${file}`);
  };
  return {
    read(file) {
      const bytes = readFile(pathOf(file), MAX_STORE_BYTES);
      return bytes === null ? { tag: 'absent' } : { tag: 'present', val: bytes };
    },
    replace(file, contents) {
      try {
        ensurePrivateDir(dir);
      } catch (e) {
        throw fileErr(e, dir);
      }
      replaceFile(pathOf(file), contents, file === 'store' ? backup : null);
    },
    remove(file) {
      removeFile(pathOf(file));
    },
    quarantine(file) {
      return quarantineFile(pathOf(file), Date.now());
    },
  };
}
