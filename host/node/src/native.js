// The napi-rs addon (native/, over the credlock host library), built into build/credlock.node
// by `npm run build` (napi build) or run-tests.sh (cargo build, dev profile).
import { createRequire } from 'node:module';

/** @type {typeof import('../build/native.d.ts')} */
export const native = createRequire(import.meta.url)('../build/credlock.node');
