// POSIX helpers shared by the lock and file imports: host/src/io_util.rs in JS.
import fs from 'node:fs';
import os from 'node:os';

const E = os.constants.errno;

/**
 * An OS error as the WIT's `io-error`, naming the path (io_util.rs `io_error`).
 * `e` is a Node fs error, or `{ errno, message }` from the native addon (positive errno).
 * The detail is the path and the OS's text: never file contents.
 */
export function ioError(e, path) {
  let errno, text;
  if (typeof e.errno === 'number' && typeof e.code === 'string') {
    errno = Math.abs(e.errno);
    // "EACCES: permission denied, open '/x'" -> "permission denied (EACCES)"
    const m = /^([A-Z0-9]+): ([^,]*)/.exec(e.message ?? '');
    text = m ? `${m[2]} (${m[1]})` : e.code;
  } else if (typeof e.errno === 'number') {
    errno = e.errno;
    text = e.message;
  } else {
    errno = 0;
    text = String(e?.message ?? e);
  }
  const detail = `${path}: ${text}`;
  switch (errno) {
    case E.ENOSPC: case E.EDQUOT: return { tag: 'no-space', val: detail };
    case E.ELOOP: return { tag: 'not-a-regular-file', val: `${path}: is a symbolic link (refused)` };
    case E.EROFS: case E.EACCES: case E.EPERM: return { tag: 'permission-denied', val: detail };
    default: return { tag: 'other', val: detail };
  }
}

/**
 * Create `dir` (and parents) if missing; the leaf gets mode 0700 when we create it
 * (io_util.rs `ensure_private_dir`). Throws a Node-style error.
 */
export function ensurePrivateDir(dir) {
  let st;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // mkdir's mode is filtered by the umask; make the leaf exactly 0700.
    fs.chmodSync(dir, 0o700);
    return;
  }
  if (st.isDirectory()) return;
  if (st.isSymbolicLink()) {
    try {
      if (fs.statSync(dir).isDirectory()) return;
    } catch { /* fall through */ }
  }
  throw Object.assign(new Error('EEXIST: exists and is not a directory'), { code: 'EEXIST', errno: -E.EEXIST });
}

/** fsync a directory, making renames and creations in it durable. */
export function syncDir(dir) {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
