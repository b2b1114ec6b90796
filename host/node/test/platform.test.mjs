// The platform imports on their own: locks across processes, files, sealing, the endpoint.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { ioError } from '../src/platform/os.js';
import path from 'node:path';
import { acquireLock, makeLocks } from '../src/platform/locks.js';
import { native } from '../src/native.js';
import { makeFiles, createExclusive, readFile, replaceFile } from '../src/platform/files.js';
import { Keyring, makeSealing } from '../src/platform/sealing.js';
import { post, checkUrl, proxyFor } from '../src/platform/endpoint.js';
import { FAST_KDF, fixtures, nowMs, oauthServer, runNode, startChild, tmpStore } from './helpers.mjs';

function lockFileIn() {
  const dir = tmpStore('locks');
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, 'x.lock');
}

/** A child process holding `mode` on `lockFile` for `holdMs` (`rounds` times); resolves once it holds it. */
async function holder(lockFile, mode, holdMs, rounds = 1) {
  const stamp = `${lockFile}.released-${Math.random()}`;
  const c = await startChild(process.execPath, [path.join(fixtures, 'hold-lock.mjs'), lockFile, mode, String(holdMs), stamp, String(rounds)], { ready: /locked/ });
  return { ...c, releasedAt: () => fs.readFileSync(stamp, 'utf8').trim().split('\n').map(Number) };
}

const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

for (const strategy of ['signal', 'helper-thread']) describe(`locks, ${strategy} wait`, () => {
  let saved;
  before(() => {
    saved = process.env.CREDLOCK_NODE_LOCK_WAIT;
    if (strategy === 'helper-thread') process.env.CREDLOCK_NODE_LOCK_WAIT = 'thread';
    else delete process.env.CREDLOCK_NODE_LOCK_WAIT;
    assert.equal(native.waitStrategy(), strategy);
  });
  after(() => {
    if (saved === undefined) delete process.env.CREDLOCK_NODE_LOCK_WAIT;
    else process.env.CREDLOCK_NODE_LOCK_WAIT = saved;
  });

  test('an exclusive lock held by another process excludes, times out, then hands over fast', async (t) => {
    const f = lockFileIn();
    const h = await holder(f, 'exclusive', 700);
    // Timeout: another process holds it.
    const t0 = nowMs();
    assert.throws(() => acquireLock(f, 'shared', 200), (e) => e.tag === 'timeout' && e.val >= 190 && e.val < 1000);
    assert.ok(nowMs() - t0 < 1500, 'the wait ended at its timeout');
    // Hand-over: block until the holder releases; we must get it right after.
    const g = acquireLock(f, 'exclusive', 10000);
    const got = nowMs();
    await h.done;
    g.release();
    const lag = got - h.releasedAt()[0];
    assert.ok(lag >= 0 && lag < 1000, `woken ${lag.toFixed(2)} ms after the release`);
  });

  test('hand-over is a kernel wake-up, not polling: median lag over 7 rounds', async (t) => {
    const f = lockFileIn();
    const rounds = 7;
    const h = await holder(f, 'exclusive', 40, rounds);
    const lags = [];
    for (let i = 0; i < rounds; i++) {
      // The holder has it (round i); wait for it in this thread, blocked in flock.
      while (!h.output().includes(`locked ${i}\n`)) await new Promise((r) => setTimeout(r, 2));
      const g = acquireLock(f, 'exclusive', 10000);
      const got = nowMs();
      g.release();
      lags.push(got);
    }
    await h.done;
    const released = h.releasedAt();
    const d = lags.map((got, i) => got - released[i]).sort((a, b) => a - b);
    t.diagnostic(`hand-over (${strategy} wait): median ${d[3].toFixed(3)} ms, max ${d[6].toFixed(3)} ms`);
    assert.ok(d[0] >= 0, 'never before the release');
    assert.ok(d[3] < 20, `median hand-over ${d[3].toFixed(2)} ms`);
  });

  test('shared locks coexist across processes; exclusive waits for them', async () => {
    const f = lockFileIn();
    const h = await holder(f, 'shared', 400);
    const mine = acquireLock(f, 'shared', 0);
    assert.throws(() => acquireLock(f, 'exclusive', 0), (e) => e.tag === 'timeout' && e.val === 0);
    mine.release();
    const ex = acquireLock(f, 'exclusive', 5000);
    await h.done;
    ex.release();
  });

  test('a waiter that gave up does not keep the lock when it is finally released', async () => {
    const f = lockFileIn();
    const h = await holder(f, 'exclusive', 300);
    assert.throws(() => acquireLock(f, 'exclusive', 50), (e) => e.tag === 'timeout');
    await h.done;
    // The abandoned helper thread won the lock after the holder left and released it at once.
    sleep(50);
    const g = acquireLock(f, 'exclusive', 0);
    g.release();
  });

});

describe('locks', () => {
  test('it is flock(2): util-linux flock(1) and this host exclude each other on the same file', async (t) => {
    if (spawnSync('flock', ['--version']).error) return t.skip('no flock(1) on this machine');
    const f = lockFileIn();
    fs.writeFileSync(f, '', { mode: 0o600 });
    const g = acquireLock(f, 'exclusive', 0);
    assert.equal(spawnSync('flock', ['-n', '-x', f, 'true']).status, 1, 'flock(1) sees our lock');
    g.release();
    assert.equal(spawnSync('flock', ['-n', '-x', f, 'true']).status, 0);
    const other = spawn('flock', ['-x', f, '-c', 'echo locked; sleep 0.4'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => other.stdout.once('data', r));
    assert.throws(() => acquireLock(f, 'shared', 100), (e) => e.tag === 'timeout');
    const again = acquireLock(f, 'shared', 5000);
    again.release();
    await new Promise((r) => other.on('close', r));
  });

  test('the store and refresh lock files are the sidecars of FORMAT.md, 0600, never deleted', () => {
    const dir = tmpStore();
    const { imports, releaseAll, held } = makeLocks(dir);
    const id = 'ab'.repeat(32);
    const a = imports.acquire({ tag: 'refresh', val: id }, 'exclusive', 0);
    const b = imports.acquire({ tag: 'store' }, 'shared', 0);
    assert.equal(held.size, 2);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(dir, 'locks')).mode & 0o777, 0o700);
    for (const p of ['credentials.lock', `locks/refresh-${id}.lock`]) {
      assert.equal(fs.statSync(path.join(dir, p)).mode & 0o777, 0o600, p);
    }
    assert.ok(a instanceof imports.LockGuard);
    a.release();
    a.release(); // idempotent
    b[Symbol.for('dispose')]();
    assert.equal(held.size, 0);
    imports.acquire({ tag: 'store' }, 'exclusive', 0);
    releaseAll();
    assert.equal(held.size, 0);
    assert.ok(fs.existsSync(path.join(dir, 'credentials.lock')));
    assert.throws(() => imports.acquire({ tag: 'refresh', val: '../../etc/passwd' }, 'exclusive', 0),
      (e) => e.payload.tag === 'io' && e.payload.val.val === 'invalid refresh lock id');
  });

  test('a symlinked lock file is refused', () => {
    const f = lockFileIn();
    fs.writeFileSync(`${f}.target`, '');
    fs.symlinkSync(`${f}.target`, f);
    assert.throws(() => acquireLock(f, 'exclusive', 0), (e) => e.tag === 'io' && e.val.tag === 'not-a-regular-file');
  });
});

describe('files', () => {
  test('replace keeps the previous version as backup, is private, leaves no temporary file', () => {
    const dir = tmpStore();
    const files = makeFiles(dir);
    assert.deepEqual(files.read('store'), { tag: 'absent' });
    files.replace('store', Buffer.from('one'));
    assert.ok(!fs.existsSync(path.join(dir, 'credentials.sealed.bak')));
    files.replace('store', Buffer.from('two'));
    assert.equal(Buffer.from(files.read('store').val).toString(), 'two');
    assert.equal(Buffer.from(files.read('backup').val).toString(), 'one');
    assert.equal(fs.statSync(path.join(dir, 'credentials.sealed')).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['credentials.sealed', 'credentials.sealed.bak']);
    files.remove('backup');
    files.remove('backup');
    assert.deepEqual(fs.readdirSync(dir), ['credentials.sealed']);
  });

  test('symlinks and non-regular files are refused, never followed', () => {
    const dir = tmpStore();
    fs.mkdirSync(dir);
    const real = path.join(dir, 'real');
    fs.writeFileSync(real, 'x');
    fs.symlinkSync(real, path.join(dir, 'credentials.sealed'));
    const files = makeFiles(dir);
    const refused = (e) => e.payload.tag === 'io' && e.payload.val.tag === 'not-a-regular-file';
    assert.throws(() => files.read('store'), refused);
    assert.throws(() => files.replace('store', Buffer.from('y')), refused);
    assert.equal(fs.readFileSync(real, 'utf8'), 'x');
    fs.mkdirSync(path.join(dir, 'credentials.sealed.bak'));
    assert.throws(() => files.read('backup'), refused);
    const fifo = path.join(dir, 'fifo');
    if (spawnSync('mkfifo', [fifo]).status === 0) {
      assert.throws(() => readFile(fifo, 100), refused);
    }
  });

  test('too large is specific; create-exclusive happens once', () => {
    const dir = tmpStore();
    fs.mkdirSync(dir);
    const big = path.join(dir, 'big');
    fs.writeFileSync(big, Buffer.alloc(101));
    assert.throws(() => readFile(big, 100), (e) => e.payload.tag === 'too-large' && e.payload.val === 101n);
    const k = path.join(dir, 'k');
    assert.equal(createExclusive(k, Buffer.from('a')), true);
    assert.equal(createExclusive(k, Buffer.from('b')), false);
    assert.equal(fs.readFileSync(k, 'utf8'), 'a');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['big', 'k']);
  });

  test('OS errors map to the WIT io-error cases like the Rust host', () => {
    const E = os.constants.errno;
    const node = (code) => Object.assign(new Error(`${code}: some text, open '/x'`), { code, errno: -E[code] });
    const cases = { ENOSPC: 'no-space', EDQUOT: 'no-space', EACCES: 'permission-denied', EPERM: 'permission-denied', EROFS: 'permission-denied', ELOOP: 'not-a-regular-file', EIO: 'other' };
    for (const [code, tag] of Object.entries(cases)) {
      assert.equal(ioError(node(code), '/s/f').tag, tag, code);
      assert.equal(ioError({ errno: E[code], message: 'from the addon' }, '/s/f').tag, tag, `${code} (native)`);
    }
    assert.equal(ioError(node('EACCES'), '/s/f').val, '/s/f: some text (EACCES)');
  });

  test('a read-only directory is permission-denied and leaves the file alone', (t) => {
    if (process.getuid?.() === 0) return t.skip('root ignores directory permissions');
    const dir = tmpStore();
    fs.mkdirSync(dir);
    replaceFile(path.join(dir, 'f'), Buffer.from('a'), null);
    fs.chmodSync(dir, 0o500);
    try {
      assert.throws(() => replaceFile(path.join(dir, 'f'), Buffer.from('b'), null), (e) => e.payload.val.tag === 'permission-denied');
    } finally {
      fs.chmodSync(dir, 0o700);
    }
  });
});

describe('sealing', () => {
  const fresh = (extra) => new Keyring({ createKeyFile: true, kdf: FAST_KDF, ...extra });

  test('key-file and passphrase slots open independently', () => {
    const dir = tmpStore();
    fs.mkdirSync(dir);
    const keyFile = path.join(dir, 'key');
    const both = makeSealing(fresh({ passphrase: 'pw', keyFile }));
    const key = both.create();
    const slots = key.slots();
    assert.deepEqual(slots.map((s) => s.kind), ['key-file', 'passphrase']);
    assert.equal(slots[0].data.length, 77);
    assert.equal(slots[1].data.length, 89);
    assert.match(fs.readFileSync(keyFile, 'utf8'), /^credlock-key-file-v1 [0-9a-f]{32} [0-9a-f]{64}\n$/);
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    const nonce = Buffer.alloc(12, 1);
    const ct = key.seal(nonce, Buffer.from('aad'), Buffer.from('hello'));
    for (const src of [{ keyFile }, { passphrase: 'pw' }]) {
      const k = makeSealing(fresh(src)).unlock(key.keyId(), slots);
      assert.equal(Buffer.from(k.open(nonce, Buffer.from('aad'), ct)).toString(), 'hello');
      assert.throws(() => k.open(nonce, Buffer.from('aaD'), ct), (e) => e.payload.tag === 'authentication-failed');
      assert.throws(() => k.seal(Buffer.alloc(11), Buffer.alloc(0), Buffer.alloc(0)), (e) => e.payload.tag === 'bad-nonce');
    }
  });

  test('wrong sources give specific errors, and unlock never creates a key', () => {
    const dir = tmpStore();
    fs.mkdirSync(dir);
    const keyFile = path.join(dir, 'key');
    const key = makeSealing(fresh({ passphrase: 'pw' })).create();
    const slots = key.slots();
    const err = (src) => {
      try {
        makeSealing(fresh(src)).unlock(key.keyId(), slots);
      } catch (e) {
        return e.payload;
      }
      return null;
    };
    assert.deepEqual(err({ passphrase: 'nope' }), { tag: 'wrong-passphrase' });
    assert.deepEqual(err({ keyFile }), { tag: 'no-matching-slot', val: ['passphrase'] });
    assert.ok(!fs.existsSync(keyFile), 'unlock must never create a key file');
    const a = makeSealing(fresh({ keyFile })).create();
    fs.unlinkSync(keyFile);
    const b = makeSealing(fresh({ keyFile }));
    assert.throws(() => b.unlock(a.keyId(), a.slots()), (e) => e.payload.tag === 'no-matching-slot');
    b.create(); // a new key file appears only through create
    assert.throws(() => makeSealing(fresh({ keyFile })).unlock(a.keyId(), a.slots()), (e) => e.payload.tag === 'wrong-key-file');
    assert.throws(() => makeSealing(fresh({})).create(), (e) => e.payload.tag === 'no-key-source');
    // Out-of-range argon2id parameters in a (tampered) slot: refused before any work.
    const bad = Buffer.from(slots[0].data);
    bad.writeUInt32BE(0x7fffffff, 1);
    assert.throws(() => makeSealing(fresh({ passphrase: 'pw' })).unlock(key.keyId(), [{ kind: 'passphrase', data: bad }]),
      (e) => e.payload.tag === 'malformed-slot');
  });
});

describe('token endpoint', () => {
  test('URL policy: https, or http to loopback only unless allowed', () => {
    const bad = (u, allow = false) => assert.throws(() => checkUrl(u, allow), (e) => e.payload.tag === 'bad-url', u);
    bad('http://example.com/token');
    bad('ftp://127.0.0.1/token');
    bad('not a url');
    checkUrl('https://example.com/token', false);
    checkUrl('http://127.0.0.1:1/token', false);
    checkUrl('http://[::1]:1/token', false);
    checkUrl('http://localhost:1/token', false);
    checkUrl('http://example.com/token', true);
  });

  test('one POST with the exact headers and body; any status is a reply; no redirect followed', async () => {
    const srv = await oauthServer();
    try {
      const t0 = nowMs();
      const reply = post({ url: `${srv.base}/echo`, body: 'grant_type=refresh_token&refresh_token=x', authorization: 'Basic Y2xpOnM=', timeoutMs: 5000 });
      const took = nowMs() - t0;
      assert.equal(reply.status, 200);
      assert.equal(reply.contentType, 'application/json');
      assert.equal(JSON.parse(Buffer.from(reply.body).toString()).access_token, 'echo');
      const { last, counts } = await srv.stats();
      assert.equal(last.method, 'POST');
      assert.equal(last.body, 'grant_type=refresh_token&refresh_token=x');
      assert.equal(last.headers['content-type'], 'application/x-www-form-urlencoded');
      assert.equal(last.headers.accept, 'application/json');
      assert.equal(last.headers.authorization, 'Basic Y2xpOnM=');
      assert.equal(counts['/echo'], 1);
      assert.ok(took < 1000, `a local POST took ${took.toFixed(1)} ms`);

      assert.equal(post({ url: `${srv.base}/status500`, body: '', timeoutMs: 5000 }).status, 500);
      const r = post({ url: `${srv.base}/redirect`, body: '', timeoutMs: 5000 });
      assert.equal(r.status, 302);
      assert.equal((await srv.stats()).counts['/echo'], 1, 'the redirect was not followed');
    } finally {
      srv.stop();
    }
  });

  test('https to a remote host goes through https_proxy (CONNECT), loopback and NO_PROXY never', async () => {
    const srv = await oauthServer();
    const saved = { ...process.env };
    try {
      process.env.HTTPS_PROXY = srv.base;
      delete process.env.https_proxy;
      delete process.env.NO_PROXY;
      delete process.env.no_proxy;
      assert.deepEqual(proxyFor(new URL('https://as.example/token')), { host: '127.0.0.1', port: Number(new URL(srv.base).port) });
      assert.equal(proxyFor(new URL('https://127.0.0.1/token')), null);
      assert.equal(proxyFor(new URL(`${srv.base}/token`)), null);
      assert.throws(() => post({ url: 'https://as.example:8443/token', body: 'x', timeoutMs: 3000 }),
        (e) => e.payload.tag === 'connect' && /proxy refused the tunnel \(HTTP 403\)/.test(e.payload.val));
      const { last } = await srv.stats();
      assert.deepEqual(last, { method: 'CONNECT', target: 'as.example:8443' });
      process.env.NO_PROXY = 'localhost,.example';
      assert.equal(proxyFor(new URL('https://as.example/token')), null);
      assert.equal(proxyFor(new URL('https://example/token')), null);
      assert.notEqual(proxyFor(new URL('https://example.org/token')), null);
    } finally {
      for (const k of ['HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
      srv.stop();
    }
  });

  test('https: a real TLS handshake, untrusted refused before sending, and a CONNECT tunnel', async (t) => {
    if (spawnSync('openssl', ['version']).error) return t.skip('no openssl to make a test certificate');
    const dir = tmpStore('tls');
    fs.mkdirSync(dir);
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=credlock test',
      '-addext', 'subjectAltName=DNS:as.test,IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:TRUE'], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const srv = await startChild(process.execPath, [path.join(fixtures, 'tls-server.mjs'), cert, key], { ready: /\n/ });
    try {
      const ports = JSON.parse(srv.output().split('\n')[0]);
      const direct = `https://127.0.0.1:${ports.https}/token`;
      // Not trusted: refused during the handshake, so nothing was sent.
      assert.throws(() => post({ url: direct, body: 'x', timeoutMs: 5000 }),
        (e) => e.payload.tag === 'connect' && e.payload.val.startsWith('TLS: '));
      const run = async (url, env) => JSON.parse((await runNode('post.mjs', [url], { NODE_EXTRA_CA_CERTS: cert, ...env })).stdout);
      const ok = await run(direct, {});
      assert.equal(ok.status, 200);
      assert.equal(ok.body.access_token, 'over-tls');
      assert.equal(ok.body.body, 'grant_type=refresh_token&refresh_token=x');
      const tunnelled = await run('https://as.test/token', { HTTPS_PROXY: `http://127.0.0.1:${ports.proxy}` });
      assert.equal(tunnelled.status, 200, JSON.stringify(tunnelled));
      assert.equal(tunnelled.body.host, 'as.test');
      const noProxy = await run('https://as.test/token', { HTTPS_PROXY: `http://127.0.0.1:${ports.proxy}`, NO_PROXY: 'as.test' });
      assert.deepEqual(noProxy.err, { tag: 'connect', val: 'host not found' });
      const stats = JSON.parse((await run(`https://127.0.0.1:${ports.https}/stats`, {})).body.posts);
      assert.equal(stats, 2, 'two POSTs arrived (direct and tunnelled); the untrusted attempt sent none');
    } finally {
      srv.child.kill();
    }
  });

  test('transport errors: refused, timeout, too large, interrupted', async () => {
    const srv = await oauthServer();
    try {
      const port = new URL(srv.base).port;
      const err = (req) => {
        try {
          post({ body: 'x', timeoutMs: 3000, ...req });
        } catch (e) {
          return e.payload;
        }
        assert.fail('expected an error');
      };
      const t0 = nowMs();
      assert.deepEqual(err({ url: `${srv.base}/slow`, timeoutMs: 300 }), { tag: 'timeout' });
      const waited = nowMs() - t0;
      assert.ok(waited >= 290 && waited < 1500, `timed out after ${waited.toFixed(0)} ms`);
      assert.deepEqual(err({ url: `${srv.base}/big` }), { tag: 'reply-too-large' });
      assert.deepEqual(err({ url: `${srv.base}/bigchunked` }), { tag: 'reply-too-large' });
      assert.equal(err({ url: `${srv.base}/hangup` }).tag, 'interrupted');
      srv.stop();
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(err({ url: `http://127.0.0.1:${port}/token` }), { tag: 'connect', val: 'connection refused' });
    } finally {
      srv.stop();
    }
  });
});
