// The Store API: a round trip through the component, errors, refresh against a real
// (local) token endpoint, and at-most-once refresh across Node and Rust processes.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Store, CredlockError } from '../src/index.js';
import { CLI, cli, oauthServer, runNode, startChild, tmpStore } from './helpers.mjs';

const hour = 3600;

describe('round trip through the host library', () => {
  test('init, put, token, list, info, delete', () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    assert.equal(s.path, dir);
    assert.deepEqual(s.list(), [], 'an absent store has no tenants');
    assert.equal(s.info().exists, false);
    assert.ok(!fs.existsSync(path.join(dir, 'credentials.sealed')), 'reading creates nothing');
    assert.equal(s.init(), true);
    assert.equal(s.init(), false);
    assert.deepEqual(s.put('acme', { access_token: 'at-1', token_type: 'Bearer', expires_in: hour, scope: 'api' }), { revision: 1, generation: 2 });
    assert.deepEqual(s.put('beta', JSON.stringify({ access_token: 'bt-1', expires_in: hour })), { revision: 1, generation: 3 });
    assert.equal(s.token('acme'), 'at-1');
    const info = s.tokenInfo('acme', { minValid: 10 });
    assert.equal(info.token, 'at-1');
    assert.equal(info.tokenType, 'Bearer');
    assert.equal(info.revision, 1);
    assert.equal(info.refreshed, false);
    assert.ok(Math.abs(info.expiresAtMs - (Date.now() + hour * 1000)) < 10000);
    s.put('acme', { access_token: 'at-2', expires_in: hour });
    const list = s.list();
    assert.deepEqual(list.map((t) => [t.tenant, t.revision]), [['acme', 2], ['beta', 1]]);
    assert.equal(list[0].hasRefreshToken, false);
    assert.ok(!JSON.stringify(list).includes('at-2'), 'list shows no secret');
    const i = s.info();
    assert.equal(i.exists, true);
    assert.equal(i.generation, 4);
    assert.equal(i.formatVersion, 1);
    assert.match(i.keyId, /^[0-9a-f]{32}$/);
    assert.deepEqual(i.slotKinds, ['key-file']);
    assert.equal(i.tenants, 2);
    assert.equal(s.delete('beta'), true);
    assert.equal(s.delete('beta'), false);
    assert.deepEqual(s.list().map((t) => t.tenant), ['acme']);
    // The files are the ones FORMAT.md names, owner-only.
    assert.deepEqual(fs.readdirSync(dir).sort(), ['credentials.lock', 'credentials.sealed', 'credentials.sealed.bak', 'key', 'lock-protocol']);
    for (const f of fs.readdirSync(dir)) assert.equal(fs.statSync(path.join(dir, f)).mode & 0o077, 0, f);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.readFileSync(path.join(dir, 'credentials.sealed')).subarray(0, 8).toString(), 'CREDLOCK');
    s.close();
    s.close();
    assert.throws(() => s.token('acme'), /closed/);
    assert.equal(Store.open(dir).token('acme'), 'at-2');
  });

  test('errors are CredlockError with a code per store-error, and never carry secrets', () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    const code = (fn) => {
      try {
        fn();
      } catch (e) {
        assert.ok(e instanceof CredlockError);
        assert.ok(e instanceof Error);
        assert.ok(!e.message.includes('sekrit'), e.message);
        assert.equal(typeof e.hint, 'string');
        return e.code;
      }
      assert.fail('expected an error');
    };
    assert.equal(code(() => s.token('nobody')), 'not-found');
    assert.equal(code(() => s.put('bad/name', { access_token: 'sekrit' })), 'invalid-tenant');
    assert.equal(code(() => s.put('acme', { token_type: 'Bearer', refresh_token: 'sekrit' })), 'invalid-token-response');
    assert.equal(code(() => s.put('acme', '{not json sekrit')), 'invalid-token-response');
    assert.equal(code(() => s.put('acme', { access_token: 'sekrit', n: 1n })), 'invalid-token-response');
    assert.equal(code(() => s.token(42)), 'invalid-tenant');
    assert.equal(s.put('fresh', { access_token: 'x', expires_in: 3600 }).revision, 1);
    // min-valid saturates (and the core caps it at half the token's lifetime).
    assert.equal(s.token('fresh', { minValid: Infinity }), 'x');
    assert.equal(code(() => s.token('fresh', { minValid: -1 })), 'invalid-options');
    s.put('old', { access_token: 'sekrit', expires_at: Math.floor(Date.now() / 1000) - 10 });
    assert.equal(code(() => s.token('old', { minValid: 60 })), 'expired');
    try {
      s.token('nobody');
    } catch (e) {
      assert.equal(e.exitCode, 3);
      assert.equal(e.message, "no credentials stored for tenant 'nobody'");
    }
    assert.throws(() => Store.open(dir, { lockTimeout: -1 }), (e) => e.code === 'invalid-options');
    assert.throws(() => Store.open(dir, { httpTimeout: 'soon' }), (e) => e.code === 'invalid-options');
    assert.throws(() => Store.open(dir, { passphrase: '' }), (e) => e.code === 'invalid-options');
    assert.throws(() => Store.open(''), (e) => e.code === 'invalid-options');
    assert.throws(() => s.refresh('old', { rejected: 'x', rejectedSha256: 'y' }), (e) => e.code === 'invalid-options');
  });

  test('a lock held elsewhere gives lock-timeout naming the lock, after the configured wait', async () => {
    const dir = tmpStore();
    const s = Store.open(dir, { lockTimeout: 0.2 });
    s.put('acme', { access_token: 'a', expires_in: hour });
    const holder = await startChild('flock', ['-x', path.join(dir, 'credentials.lock'), '-c', 'echo locked; sleep 1'], { ready: /locked/ });
    const t0 = Date.now();
    assert.throws(() => s.token('acme'), (e) => e.code === 'lock-timeout' && e.detail.lock === 'store' && e.detail.waitedMs >= 190);
    assert.ok(Date.now() - t0 < 1000);
    await holder.done;
    assert.equal(s.token('acme'), 'a');
  });

  test('environment: CREDLOCK_STORE and CREDLOCK_PASSPHRASE, like the CLI', async () => {
    const dir = tmpStore();
    const r = await runNode('store-call.mjs', ['', 'put', '"acme"', JSON.stringify({ access_token: 'env-at', expires_in: hour })], {
      CREDLOCK_STORE: dir, CREDLOCK_PASSPHRASE: 'pw',
    });
    assert.deepEqual(JSON.parse(r.stdout).ok, { revision: 1, generation: 1 });
    assert.deepEqual(fs.readdirSync(dir).sort(), ['credentials.lock', 'credentials.sealed', 'lock-protocol'], 'a passphrase store gets no key file');
    assert.deepEqual(Store.open(dir, { passphrase: 'pw' }).info().slotKinds, ['passphrase']);
    const saved = process.env.CREDLOCK_STORE;
    process.env.CREDLOCK_STORE = dir;
    try {
      assert.equal(Store.open({ passphrase: 'pw' }).path, dir);
      assert.equal(Store.open().path, dir);
    } finally {
      if (saved === undefined) delete process.env.CREDLOCK_STORE;
      else process.env.CREDLOCK_STORE = saved;
    }
  });
});

describe('refresh through a token endpoint', () => {
  let srv;
  before(async () => {
    srv = await oauthServer();
  });
  after(() => srv.stop());

  test('token refreshes an expiring token; refresh with rejected only refreshes the refused one', async () => {
    await srv.reset();
    const s = Store.open(tmpStore());
    const stale = await srv.expiredGrant('conf-basic');
    s.put('acme', stale);
    const t = s.tokenInfo('acme', { minValid: 60 });
    assert.notEqual(t.token, stale.access_token);
    assert.equal(t.refreshed, true);
    assert.ok(await srv.resource(t.token), 'the server accepts the new token');
    assert.equal(s.token('acme', { minValid: 60 }), t.token, 'fresh now: no second refresh');
    const stats = await srv.stats();
    assert.equal(stats.refresh_successes, 1);
    // client_secret_basic, as the tenant asked: the server saw the Basic header.
    assert.deepEqual(stats.by_auth_method, { client_secret_basic: 1 });
    // A stale rejection (of the first token, no longer stored) returns the stored token
    // without a refresh.
    assert.equal(s.refresh('acme', { rejected: stale.access_token }).token, t.token);
    const sha = (x) => crypto.createHash('sha256').update(x).digest('hex');
    assert.equal(s.refresh('acme', { rejectedSha256: sha(stale.access_token).slice(0, 16) }).token, t.token);
    assert.equal(await srv.counter('refresh_requests'), 1);
    // Rejecting the stored one refreshes.
    const r = s.refresh('acme', { rejected: t.token });
    assert.notEqual(r.token, t.token);
    assert.equal(r.refreshed, true);
    const forced = s.refresh('acme');
    assert.notEqual(forced.token, r.token);
    assert.ok(await srv.resource(forced.token));
    assert.equal(await srv.counter('refresh_successes'), 3);
    assert.equal(await srv.counter('duplicate_presentations'), 0);
  });

  test('invalid_grant is reauth-needed, and stays so', async () => {
    await srv.reset();
    const s = Store.open(tmpStore());
    const stale = await srv.expiredGrant();
    await srv.revoke(stale.refresh_token);
    s.put('acme', stale);
    assert.throws(() => s.token('acme', { minValid: 60 }), (e) => e.code === 'reauth-needed' && e.exitCode === 4);
    assert.throws(() => s.token('acme', { minValid: 60 }), (e) => e.code === 'reauth-needed');
    assert.equal(s.list()[0].needsReauth, true);
    // The server said invalid_grant once; the second call presented nothing.
    assert.equal(await srv.counter('invalid_grant'), 1);
    assert.equal(await srv.counter('refresh_requests'), 1);
  });

  test('endpoint failures are specific: refused connection, an HTTP 503 page, plain http off loopback', async () => {
    await srv.reset();
    const s = Store.open(tmpStore());
    s.put('down', await srv.expiredGrant('conf-basic', { token_endpoint: 'http://127.0.0.1:9/token' }));
    assert.throws(() => s.token('down', { minValid: 60 }), (e) => e.code === 'endpoint' && e.kind === 'transport' && e.detail.transport === 'connect');
    s.put('five', await srv.expiredGrant());
    await srv.fault('http503_html');
    assert.throws(() => s.token('five', { minValid: 60 }), (e) => e.code === 'endpoint' && e.kind === 'server' && e.detail.status === 503);
    assert.deepEqual((await srv.stats()).faults_injected, { http503_html: 1 });
    // Plain http off loopback is refused when stored, not at the first refresh.
    const far = await srv.expiredGrant('conf-basic', { token_endpoint: 'http://192.0.2.1/token' });
    assert.throws(() => s.put('far', far), (e) => e.code === 'invalid-token-response' && e.message.includes('plain http'));
  });

  test('at most one refresh when 4 Node and 4 Rust processes find the token expired at once', async () => {
    await srv.reset();
    const dir = tmpStore();
    const stale = await srv.expiredGrant();
    Store.open(dir).put('shared', stale);
    await srv.fault('slow', 1, { delay_ms: 150 });
    const env = { CREDLOCK_STORE: dir };
    const node = [...Array(4)].map(() => runNode('store-call.mjs', [dir, 'token', '"shared"', '{"minValid":60}'], env));
    const rust = [...Array(4)].map(() => startChild(CLI, ['token', 'shared'], { env }).then((c) => c.done));
    const results = await Promise.all([...node, ...rust]);
    const tokens = [
      ...results.slice(0, 4).map((r) => JSON.parse(r.stdout).ok),
      ...results.slice(4).map((r) => (assert.equal(r.code, 0, r.stderr), r.stdout.trim())),
    ];
    assert.notEqual(tokens[0], stale.access_token);
    assert.deepEqual(tokens, Array(8).fill(tokens[0]));
    assert.ok(await srv.resource(tokens[0]), 'the server accepts the new token');
    assert.equal(await srv.counter('refresh_requests'), 1, 'the refresh token was presented once');
    assert.equal(await srv.counter('duplicate_presentations'), 0);
    assert.equal(cli(['token', 'shared'], { store: dir }).stdout.trim(), tokens[0]);
  });
});

test('refuses a store locked with the WASI build\'s lease files', () => {
  const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'credlock-proto-'));
  const storeDir = path.join(dir, 'store');
  fs.mkdirSync(storeDir, { mode: 0o700 });
  fs.writeFileSync(path.join(storeDir, 'lock-protocol'), 'wasi-lease\n');
  const s = Store.open(storeDir);
  assert.throws(() => s.list(), (e) => e instanceof CredlockError && /lease/.test(e.message));
  assert.equal(fs.existsSync(path.join(storeDir, 'credentials.sealed')), false);
  s.close();
  const fresh = path.join(dir, 'fresh');
  const t = Store.open(fresh);
  t.put('acme', { access_token: 'a' });
  t.close();
  assert.equal(fs.readFileSync(path.join(fresh, 'lock-protocol'), 'utf8'), 'flock\n');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('Store.open hands its settings to the host by name, and the host checks them', () => {
  const dir = tmpStore();
  const refused = (opts, pattern) => {
    let caught;
    try {
      Store.open(dir, opts);
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof CredlockError, `${JSON.stringify(opts)} must be refused`);
    assert.equal(caught.code, 'invalid-options');
    assert.match(caught.message, pattern);
  };
  // A misspelt setting is named, never silently ignored.
  refused({ lockTimeOut: 5 }, /unknown field `lock_time_out`/);
  refused({ lockTimeout: Number.NaN }, /lock timeout/);
  refused({ lockTimeout: 'soon' }, /lock timeout/);
  refused({ kdf: { iterations: 1.5 } }, /kdf must have whole numbers/);
  refused({ passphrase: '' }, /passphrase is empty/);
  // Numeric strings are seconds, as in the environment; null means "from the environment".
  const s = Store.open(dir, { lockTimeout: '2.5', httpTimeout: null, kdf: { iterations: 1, memoryKiB: 64, parallelism: 1 } });
  assert.equal(s.path, dir);
  s.put('acme', { access_token: 'at-1', expires_in: hour });
  assert.equal(s.token('acme'), 'at-1');
});
