// The hot in-process `token` call: a fresh token already in the store, read again and again
// from one Store (the pooled instance, the cached key). Prints µs per call, sync and async.
//   npm run build:release && node bench/token.mjs [calls]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Store } from '../src/index.js';

const calls = Number(process.argv[2] ?? 20000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'credlock-bench-'));
try {
  const s = Store.open(path.join(dir, 'store'));
  s.put('acme', { access_token: 'at-bench', expires_in: 3600 });
  for (let i = 0; i < 1000; i++) s.token('acme');
  let t0 = performance.now();
  for (let i = 0; i < calls; i++) s.token('acme');
  const sync = ((performance.now() - t0) * 1000) / calls;
  const n = Math.min(calls, 5000);
  t0 = performance.now();
  for (let i = 0; i < n; i++) await s.tokenAsync('acme');
  const serial = ((performance.now() - t0) * 1000) / n;
  t0 = performance.now();
  for (let i = 0; i < n; i += 4) await Promise.all([0, 1, 2, 3].map(() => s.tokenAsync('acme')));
  const parallel = ((performance.now() - t0) * 1000) / n;
  console.log(`token (sync, hot, in-process): ${sync.toFixed(1)} µs/call over ${calls} calls`);
  console.log(`tokenAsync, one at a time:     ${serial.toFixed(1)} µs/call`);
  console.log(`tokenAsync, 4 in flight:       ${parallel.toFixed(1)} µs/call (throughput)`);
  s.close();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
