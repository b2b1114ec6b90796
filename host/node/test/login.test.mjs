// Logging in through the binding against the real OAuth server (tests/oauth-server): the
// prompt reaches a JS callback on the event loop while the login waits on the libuv pool,
// the tokens are stored so that `token` and `logout` work, and a pending login is reported.
// Guards the binding's conversions; the flows themselves are tested in Rust.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Store } from '../src/index.js';
import { oauthServer, tmpStore } from './helpers.mjs';

const SCOPE = 'openid offline_access api';

async function approve(issuer, userCode) {
  const r = await fetch(`${issuer}/test/device`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user_code: userCode }),
  });
  assert.equal(r.status, 200);
}

test('a device login prompts through the callback, stores, and logs out', async () => {
  const srv = await oauthServer({ accessTtlS: 60 });
  try {
    const store = Store.open({ dir: tmpStore() });
    const prompts = [];
    const result = await store.loginAsync(
      'acme',
      { issuer: srv.base, clientId: 'device-app', scope: SCOPE },
      (p) => {
        prompts.push(p);
        approve(srv.base, p.userCode);
      },
    );
    assert.equal(prompts.length, 1);
    assert.equal(prompts[0].kind, 'device');
    assert.ok(prompts[0].url.endsWith('/device') && prompts[0].userCode);
    assert.equal(result.joined, false);
    assert.equal(result.refreshable, true, 'offline_access was asked for, and granted');
    assert.equal(store.token('acme'), result.token.token);
    assert.deepEqual(store.pendingLogins(), []);
    const out = store.logout('acme');
    assert.equal(out.revocation, 'revoked');
    assert.equal(out.deleted, true);
    store.close();
  } finally {
    srv.stop();
  }
});

test('token during a pending login says so', async () => {
  const srv = await oauthServer({ accessTtlS: 60 });
  try {
    const store = Store.open({ dir: tmpStore() });
    let code;
    const gotCode = new Promise((resolve) => {
      code = resolve;
    });
    const login = store.loginAsync('acme', { issuer: srv.base, clientId: 'device-app', scope: SCOPE }, (p) => code(p.userCode));
    const userCode = await gotCode;
    assert.deepEqual(store.pendingLogins().map((p) => p.tenant), ['acme']);
    assert.throws(() => store.token('acme'), (e) => e.code === 'login' && e.kind === 'pending' && e.exitCode === 12);
    await approve(srv.base, userCode);
    const result = await login;
    assert.equal(store.token('acme'), result.token.token);
    store.close();
  } finally {
    srv.stop();
  }
});
