// The Promise API runs on the libuv thread pool: a lock wait or a refresh never blocks the
// event loop, and its errors are the same CredlockError as the sync calls'.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Store, CredlockError } from '../src/index.js';
import { CLI, oauthServer, runNode, startChild, tmpStore } from './helpers.mjs';

const hour = 3600;

/** Count setInterval ticks while `promise` settles: { ticks, ms, value | error }. */
async function ticking(promise, every = 10) {
  let ticks = 0;
  const timer = setInterval(() => { ticks++; }, every);
  const t0 = performance.now();
  try {
    return { value: await promise, ticks, ms: performance.now() - t0 };
  } catch (error) {
    return { error, ticks, ms: performance.now() - t0 };
  } finally {
    clearInterval(timer);
  }
}

describe('the event loop stays responsive', () => {
  test('while tokenAsync waits on a store lock the Rust CLI holds, then lock-timeout', async () => {
    const dir = tmpStore();
    const s = Store.open(dir, { lockTimeout: 1 });
    await s.putAsync('acme', { access_token: 'a', expires_in: hour });
    // The Rust CLI, paused at a failpoint inside its write, holds the store lock.
    const holder = await startChild(CLI, ['put', 'acme'], {
      env: { CREDLOCK_STORE: dir, CREDLOCK_FAILPOINTS: 'replace:before-rename=pause' },
      readyStderr: /failpoint replace:before-rename reached/,
      stdin: JSON.stringify({ access_token: 'b', expires_in: hour }),
    });
    try {
      const r = await ticking(s.tokenAsync('acme'));
      assert.ok(r.error instanceof CredlockError, String(r.error));
      assert.equal(r.error.code, 'lock-timeout');
      assert.equal(r.error.exitCode, 5);
      assert.equal(r.error.detail.lock, 'store');
      assert.ok(r.error.detail.waitedMs >= 990, `waited ${r.error.detail.waitedMs} ms`);
      assert.ok(r.ms >= 990 && r.ms < 3000, `settled after ${r.ms} ms`);
      // A 10 ms timer over ~1 s: it kept firing (a blocked loop would give 0 or 1).
      assert.ok(r.ticks >= 40, `only ${r.ticks} timer ticks while waiting`);
    } finally {
      holder.child.kill('SIGKILL');
      await holder.done;
    }
    assert.equal(await s.tokenAsync('acme'), 'a', 'the lock died with its holder');
  });

  test('while flock(1) holds the lock: several waits at once, each its own lock-timeout', async () => {
    const dir = tmpStore();
    const s = Store.open(dir, { lockTimeout: 0.5 });
    s.put('acme', { access_token: 'a', expires_in: hour });
    const holder = await startChild('flock', ['-x', path.join(dir, 'credentials.lock'), '-c', 'echo locked; sleep 2'], { ready: /locked/ });
    const r = await ticking(Promise.allSettled([s.tokenAsync('acme'), s.listAsync(), s.putAsync('b', { access_token: 'b' })]));
    for (const x of r.value) {
      assert.equal(x.status, 'rejected');
      assert.equal(x.reason.code, 'lock-timeout');
    }
    assert.ok(r.ticks >= 20, `only ${r.ticks} ticks`);
    await holder.done;
  });

  test('while a refresh waits for a slow token endpoint', async () => {
    const srv = await oauthServer();
    try {
      const s = Store.open(tmpStore());
      const stale = await srv.expiredGrant();
      s.put('acme', stale);
      // The server answers the refresh after 300 ms.
      await srv.fault('slow', 1, { delay_ms: 300 });
      const r = await ticking(s.refreshAsync('acme'));
      assert.notEqual(r.value.token, stale.access_token);
      assert.ok(await srv.resource(r.value.token), 'the server accepts the new token');
      assert.equal(r.value.refreshed, true);
      assert.ok(r.ticks >= 8, `only ${r.ticks} ticks`);
      assert.equal(await srv.counter('refresh_successes'), 1);
      assert.equal(await srv.counter('duplicate_presentations'), 0);
    } finally {
      srv.stop();
    }
  });
});

describe('the Promise API', () => {
  test('round trip, errors, closed', async () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    assert.equal(await s.initAsync(), true);
    assert.deepEqual(await s.putAsync('acme', { access_token: 'at-1', expires_in: hour }), { revision: 1, generation: 2 });
    assert.equal(await s.tokenAsync('acme', { minValid: 10 }), 'at-1');
    const t = await s.tokenInfoAsync('acme');
    assert.deepEqual([t.token, t.revision, t.refreshed], ['at-1', 1, false]);
    assert.deepEqual((await s.listAsync()).map((x) => x.tenant), ['acme']);
    assert.equal((await s.infoAsync()).tenants, 1);
    await assert.rejects(s.tokenAsync('nobody'), (e) => e instanceof CredlockError && e.code === 'not-found' && e.exitCode === 3);
    await assert.rejects(s.tokenAsync(42), (e) => e.code === 'invalid-tenant');
    await assert.rejects(s.putAsync('acme', { access_token: 'x', n: 1n }), (e) => e.code === 'invalid-token-response');
    await assert.rejects(s.tokenAsync('acme', { minValid: -1 }), (e) => e.code === 'invalid-options');
    await assert.rejects(s.refreshAsync('acme', { rejected: 'x', rejectedSha256: 'y' }), (e) => e.code === 'invalid-options');
    assert.equal(await s.deleteAsync('acme'), true);
    assert.equal(await s.deleteAsync('acme'), false);
    // A call already running finishes after close; later ones are refused.
    const running = s.putAsync('late', { access_token: 'l' });
    s.close();
    assert.equal((await running).revision, 1);
    await assert.rejects(s.tokenAsync('late'), /closed/);
    assert.throws(() => s.token('late'), /closed/);
    assert.equal(await Store.open(dir).tokenAsync('late'), 'l');
  });

  test('every maintenance call has its Promise twin', async () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    await s.initAsync();
    const slots = await s.slotsAsync();
    assert.deepEqual(slots.map((x) => x.kind), ['key-file']);
    await assert.rejects(s.removeSlotAsync(0), (e) => e.code === 'slot-change');
    await assert.rejects(s.addSlotAsync('key-file', { passphrase: 'p' }), (e) => e.code === 'invalid-options');
    const claude = { claudeAiOauth: { accessToken: 'at-claude', expiresAt: 4102444800000 } };
    assert.deepEqual((await s.importTokensAsync(claude, { tenant: 'claude' })).imported, ['claude']);
    await assert.rejects(s.importTokensAsync(claude, { tenant: 'x', kind: 'codex' }), (e) => e.code === 'invalid-token-response');
    const before = (await s.infoAsync()).keyId;
    assert.notEqual((await s.rekeyAsync()).keyId, before);
    assert.equal(await s.tokenAsync('claude', { minValid: 0 }), 'at-claude');
    assert.deepEqual(await s.pendingLoginsAsync(), []);
    await assert.rejects(s.recoverAsync(), (e) => e.code === 'recover');
    await assert.rejects(s.quarantineAsync(), (e) => e.code === 'recover');
    // Damaged: quarantine moves it aside, and names where.
    const sealed = path.join(dir, 'credentials.sealed');
    const b = fs.readFileSync(sealed);
    b[b.length - 1] ^= 1;
    fs.writeFileSync(sealed, b);
    assert.match(await s.quarantineAsync(), /corrupt/);
    s.close();
  });

  test('64 concurrent puts from one process: nothing lost', async () => {
    const dir = tmpStore();
    const s = Store.open(dir, { lockTimeout: 60 });
    const n = 64;
    await Promise.all([...Array(n)].map((_, i) => s.putAsync(i % 2 ? 'odd' : `t${i}`, { access_token: `v${i}`, expires_in: hour })));
    const tenants = new Map((await s.listAsync()).map((x) => [x.tenant, x]));
    assert.equal(tenants.get('odd').revision, n / 2);
    assert.equal(tenants.size, n / 2 + 1);
    // n puts in at most n writes (group commit may write several in one).
    assert.ok((await s.infoAsync()).generation <= n);
  });
});

describe('many Node processes and the Rust CLI against a token endpoint', () => {
  let srv;
  before(async () => {
    srv = await oauthServer();
  });
  after(() => srv.stop());

  test('one refresh per expiry, nothing lost, across 3 expiries', async () => {
    const dir = tmpStore();
    await srv.reset();
    const s = Store.open(dir);
    for (let round = 0; round < 3; round++) {
      // A new expiry: the tenant's token expired, with a grant fresh at the server.
      const stale = await srv.expiredGrant();
      s.put('shared', stale);
      // The refresh is slow, so that the others find it in flight.
      await srv.fault('slow', 1, { delay_ms: 150 });
      const env = { CREDLOCK_STORE: dir, CREDLOCK_LOCK_TIMEOUT: '60' };
      const node = [...Array(4)].map(() => runNode('async-call.mjs', [dir, 'tokenAsync', '"shared"', '{"minValid":60}'], env));
      const rust = [...Array(3)].map(() => startChild(CLI, ['token', 'shared'], { env }).then((c) => c.done));
      const own = [s.tokenAsync('shared', { minValid: 60 }), s.tokenAsync('shared', { minValid: 60 })];
      const [nodeR, rustR, ownR] = await Promise.all([Promise.all(node), Promise.all(rust), Promise.all(own)]);
      const got = [
        ...nodeR.map((r) => JSON.parse(r.stdout).ok),
        ...rustR.map((r) => (assert.equal(r.code, 0, r.stderr), r.stdout.trim())),
        ...ownR,
      ];
      assert.notEqual(got[0], stale.access_token, `round ${round}`);
      assert.deepEqual(got, Array(9).fill(got[0]), `round ${round}`);
      assert.ok(await srv.resource(got[0]), 'the server accepts the new token');
      assert.equal(await srv.counter('refresh_requests'), round + 1, 'one refresh per expiry');
      assert.equal(await srv.counter('duplicate_presentations'), 0);
    }
    const t = s.list()[0];
    // Three puts, and three refreshes of two writes each (the durable intent, then the result).
    assert.equal(t.revision, 9, 'every write counted once');
    assert.equal(t.needsReauth, false);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.')), []);
  });
});
