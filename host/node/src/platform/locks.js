// credlock:store/locks — flock(2) on the sidecar files of FORMAT.md ("Locks"), through the
// native addon, so Node, Rust and Python processes exclude each other on the same inodes.
import path from 'node:path';
import { native } from '../native.js';
import { ensurePrivateDir, ioError } from './os.js';
import { createExclusive, readFile } from './files.js';

const symbolDispose = Symbol.dispose ?? Symbol.for('dispose');
const REFRESH_ID = /^[0-9a-f]{64}$/;

/**
 * The `locks` import for one store directory. `held` collects every guard still held, so
 * that a trapped instance's locks can be released (the Rust host drops its resource table).
 */
export function makeLocks(dir) {
  const held = new Set();
  let protocolChecked = false;

  /**
   * Claim the store for flock, or refuse one the WASI build's lease files already use: two
   * lock protocols on one store exclude nothing (FORMAT.md, "Locks").
   */
  function checkProtocol() {
    if (protocolChecked) return;
    const marker = path.join(dir, 'lock-protocol');
    let found;
    try {
      createExclusive(marker, Buffer.from('flock\n'));
      found = (readFile(marker, 64) ?? Buffer.alloc(0)).toString('utf8').trim();
    } catch (e) {
      const io = e && e.payload && e.payload.tag === 'io' ? e.payload.val : { tag: 'other', val: String(marker) };
      throw { payload: { tag: 'io', val: io } };
    }
    if (found !== 'flock') {
      throw {
        payload: {
          tag: 'io',
          val: {
            tag: 'other',
            val: `this store is locked with ${found} (the WASI build's lease files), which flock does not exclude: use the same kind of host for this store`,
          },
        },
      };
    }
    protocolChecked = true;
  }

  class LockGuard {
    #native;
    constructor(nativeGuard) {
      this.#native = nativeGuard;
      held.add(this);
    }
    /** Release the lock now. Idempotent. */
    release() {
      if (this.#native) {
        this.#native.release();
        this.#native = null;
        held.delete(this);
      }
    }
    /** The component dropped its handle: release. */
    [symbolDispose]() {
      this.release();
    }
  }
  if (symbolDispose !== Symbol.for('dispose')) {
    LockGuard.prototype[Symbol.for('dispose')] = LockGuard.prototype[symbolDispose];
  }

  function lockPath(target) {
    let lockDir;
    let file;
    if (target.tag === 'store') {
      lockDir = dir;
      file = 'credentials.lock';
    } else if (target.tag === 'refresh') {
      // The WIT promises 64 lowercase hex; anything else must not get to choose a path.
      if (typeof target.val !== 'string' || !REFRESH_ID.test(target.val)) {
        throw { payload: { tag: 'io', val: { tag: 'other', val: 'invalid refresh lock id' } } };
      }
      lockDir = path.join(dir, 'locks');
      file = `refresh-${target.val}.lock`;
    } else {
      throw new TypeError(`unknown lock target ${target.tag}`);
    }
    try {
      ensurePrivateDir(lockDir);
    } catch (e) {
      throw { payload: { tag: 'io', val: ioError(e, lockDir) } };
    }
    return path.join(lockDir, file);
  }

  /** acquire: func(target, mode, timeout-ms) -> result<lock-guard, lock-error> */
  function acquire(target, mode, timeoutMs) {
    const p = lockPath(target);
    if (target.tag === 'store') checkProtocol();
    const r = native.acquire(p, mode === 'exclusive', timeoutMs >>> 0);
    if (r instanceof native.LockGuard) return new LockGuard(r);
    if (typeof r.waitedMs === 'number') throw { payload: { tag: 'timeout', val: r.waitedMs } };
    throw { payload: { tag: 'io', val: ioError(r, p) } };
  }

  /** Release everything still held (after a trap, or on close). */
  function releaseAll() {
    for (const g of [...held]) g.release();
  }

  return { imports: { acquire, LockGuard }, releaseAll, held };
}

/** Take a lock directly (tests and tools): `{ release() }`, or throws the WIT error payload. */
export function acquireLock(lockFile, mode, timeoutMs) {
  const r = native.acquire(lockFile, mode === 'exclusive', timeoutMs >>> 0);
  if (r instanceof native.LockGuard) return r;
  if (typeof r.waitedMs === 'number') throw { tag: 'timeout', val: r.waitedMs };
  throw { tag: 'io', val: ioError(r, lockFile) };
}
