// The native addon (host/node/native, napi-rs, built into build/ by scripts/build.mjs):
// flock with a timeout, and argon2id.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** @type {{ acquire(path: string, exclusive: boolean, timeoutMs: number): any,
 *           argon2id(pass: Buffer, salt: Buffer, m: number, t: number, p: number): Buffer,
 *           waitStrategy(): string, LockGuard: Function }} */
export const native = createRequire(import.meta.url)(
  fileURLToPath(new URL('../build/credlock_native.node', import.meta.url)),
);
