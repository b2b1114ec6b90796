// Processes killed (-9) at exact steps of a write or a refresh, through the failpoints
// both hosts share (CREDLOCK_FAILPOINTS): the store stays readable, the lock dies with the
// process, and an interrupted refresh is reported, never retried blindly. (That a trap
// poisons nothing is the host library's to test: host/tests.)
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Store } from '../src/index.js';
import { cli, fixtures, oauthServer, startChild, tmpStore } from './helpers.mjs';

const hour = 3600;

/** A store-call.mjs child that stops at `point`; resolves once it is there. */
async function stoppedAt(point, dir, args) {
  const c = await startChild(process.execPath, [path.join(fixtures, 'store-call.mjs'), dir, ...args], {
    env: { CREDLOCK_FAILPOINTS: `${point}=pause`, CREDLOCK_LOCK_TIMEOUT: '5' },
    readyStderr: new RegExp(`failpoint ${point} reached`),
  });
  return c;
}

async function kill9(c) {
  c.child.kill('SIGKILL');
  const r = await c.done;
  assert.equal(r.signal, 'SIGKILL');
}

describe('killed mid-write', () => {
  test('before the rename: the previous version stands, and the lock died with the process', async () => {
    const dir = tmpStore();
    Store.open(dir).put('acme', { access_token: 'secret-1', expires_in: hour });
    const c = await stoppedAt('replace:before-rename', dir, ['put', '"acme"', JSON.stringify({ access_token: 'secret-2', expires_in: hour })]);
    await kill9(c);
    assert.equal(Store.open(dir).token('acme'), 'secret-1');
    const r = cli(['put', 'acme'], { store: dir, env: { CREDLOCK_LOCK_TIMEOUT: '2' }, input: JSON.stringify({ access_token: 'secret-3', expires_in: hour }) });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(Store.open(dir).tokenInfo('acme').revision, 2);
    // The abandoned temporary file was removed by the next writer, under the store lock.
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.credentials.sealed.tmp-')), []);
  });
});

describe('killed mid-refresh', () => {
  let srv;
  before(async () => {
    srv = await oauthServer();
  });
  after(() => srv.stop());

  for (const [point, requests] of [['post:before', 0], ['post:after', 1]]) {
    test(`at ${point}: the next call reports refresh-outcome-unknown, in Node and in Rust`, async () => {
      await srv.reset();
      const dir = tmpStore();
      Store.open(dir).put('acme', await srv.expiredGrant());
      const c = await stoppedAt(point, dir, ['token', '"acme"', '{"minValid":60}']);
      await kill9(c);
      assert.equal(await srv.counter('refresh_requests'), requests);
      assert.throws(() => Store.open(dir).token('acme', { minValid: 60 }), (e) => e.code === 'refresh-outcome-unknown' && e.exitCode === 4);
      const r = cli(['token', 'acme'], { store: dir });
      assert.equal(r.status, 4, r.stderr);
      assert.match(r.stderr, /may have been spent/);
      assert.equal(await srv.counter('refresh_requests'), requests, 'the refresh token was not presented again');
      assert.equal(await srv.counter('duplicate_presentations'), 0);
      assert.equal(Store.open(dir).list()[0].needsReauth, true);
    });
  }
});
