// Lock hand-over latency between two processes: how long after one process releases a
// contended flock does the other, blocked in acquire, hold it? Prints p50/p90/max in µs.
//   node bench/handover.mjs [rounds]          (CREDLOCK_NODE_LOCK_WAIT=thread: the helper-thread wait)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const rounds = Number(process.argv[2] ?? 200);
const me = fileURLToPath(import.meta.url);

if (process.argv[3] === 'child') {
  const { acquireLock } = await import('../src/platform/locks.js');
  const { native } = await import('../src/native.js');
  const [lockFile, out, role] = process.argv.slice(4);
  const now = () => performance.timeOrigin + performance.now();
  const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  const stamps = [];
  if (role === 'b') sleep(20);
  for (let i = 0; i < rounds; i++) {
    const g = acquireLock(lockFile, 'exclusive', 10000);
    const got = now();
    sleep(2);
    const rel = now();
    g.release();
    stamps.push([got, rel]);
    sleep(1); // let the other side, already blocked, take it
  }
  fs.writeFileSync(out, JSON.stringify({ strategy: native.waitStrategy(), stamps }));
  process.exit(0);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'credlock-handover-'));
const lockFile = path.join(dir, 'x.lock');
const run = (role) => new Promise((resolve) => {
  const c = spawn(process.execPath, [me, String(rounds), 'child', lockFile, path.join(dir, role), role], { stdio: 'inherit' });
  c.on('close', resolve);
});
await Promise.all([run('a'), run('b')]);
const a = JSON.parse(fs.readFileSync(path.join(dir, 'a')));
const b = JSON.parse(fs.readFileSync(path.join(dir, 'b')));
fs.rmSync(dir, { recursive: true });
// Every acquisition that followed the other side's release within 50 ms is a hand-over.
const events = [...a.stamps.map(([g, r]) => ({ g, r, who: 'a' })), ...b.stamps.map(([g, r]) => ({ g, r, who: 'b' }))].sort((x, y) => x.g - y.g);
const lags = [];
for (let i = 1; i < events.length; i++) {
  const prev = events[i - 1];
  const cur = events[i];
  if (cur.who !== prev.who && cur.g >= prev.r && cur.g - prev.r < 50) lags.push((cur.g - prev.r) * 1000);
}
lags.sort((x, y) => x - y);
const q = (p) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))].toFixed(0);
console.log(`${a.strategy}: ${lags.length} hand-overs, p50 ${q(0.5)} µs, p90 ${q(0.9)} µs, max ${q(1)} µs`);
