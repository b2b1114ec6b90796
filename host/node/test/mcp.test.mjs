// credlock/mcp and credlock/fetch with the real MCP TypeScript SDK (@modelcontextprotocol/sdk,
// pinned in package.json), the real OAuth server (tests/oauth-server: oidc-provider with
// refresh-token rotation and reuse detection) and real processes. The failures guarded
// against: MCP clients in several processes that each refresh on their own 401, presenting
// one refresh token several times (the server then revokes the grant); an
// invalidateCredentials('tokens') after a lost race that deletes the winner's tokens
// (vercel/ai #20674); a real refresh token handed to the SDK; a 401 answered by more than
// one refresh or more than one retry.
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Store } from '../src/index.js';
import { ATTACHMENTS, CredlockMcpError, CredlockOAuthProvider, HANDLE_PREFIX } from '../src/mcp.js';
import { authFetch } from 'credlock/fetch';
import { fixtures, oauthServer, startChild, tmpStore, cli } from './helpers.mjs';

const PROCESSES = 8;
const TTL_S = 2;

/** The MCP server fixture in front of the OAuth server at `oauthBase`. */
async function mcpServer(oauthBase) {
  const c = await startChild(process.execPath, [path.join(fixtures, 'mcp-server.mjs'), oauthBase], { ready: /READY \S+\n/ });
  const url = /READY (\S+)/.exec(c.output())[1];
  return {
    url,
    async stats() {
      return (await fetch(new URL('/test/stats', url))).json();
    },
    stop() {
      c.child.kill();
    },
  };
}

/** Run `n` MCP client processes calling the tool from `startAtMs` for `durationMs`. */
async function clients(n, store, tenant, url, { startAtMs, durationMs, intervalMs, together = false }) {
  const script = path.join(fixtures, 'mcp-client.mjs');
  const runs = [];
  for (let i = 0; i < n; i++) {
    runs.push(startChild(process.execPath, [script, store, tenant, url, String(startAtMs), String(durationMs), String(intervalMs), together ? 'together' : 'apart']).then((c) => c.done));
  }
  const done = await Promise.all(runs);
  return done.map((r) => {
    assert.equal(r.code, 0, `a client failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  });
}

/** An MCP client in this process, for the tests that look inside the provider. */
async function connect(provider, url) {
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: provider.fetch });
  const client = new Client({ name: 'credlock-test', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

describe('the MCP SDK client through credlock/mcp', () => {
  let oauth;
  let mcp;
  before(async () => {
    oauth = await oauthServer({ accessTtlS: TTL_S });
    mcp = await mcpServer(oauth.base);
  });
  after(() => {
    mcp?.stop();
    oauth?.stop();
  });

  test(`${PROCESSES} processes call a tool every 100 ms through 3 expiries: every call succeeds, refreshes per half-lifetime not per process, none presented twice`, async () => {
    const dir = tmpStore();
    Store.open(dir).put('acme', await oauth.grant('conf-basic'));
    await oauth.reset();
    const before = await mcp.stats();
    // Three token lifetimes of calls, after every process has connected.
    const durationMs = 3 * TTL_S * 1000 + 500;
    const t0 = Date.now();
    // Elapsed from the counters' reset: connecting takes tokens too.
    const results = await clients(PROCESSES, dir, 'acme', mcp.url, { startAtMs: t0 + 4000, durationMs, intervalMs: 100 });
    const elapsedS = (Date.now() - t0) / 1000;
    const stats = await oauth.stats();
    const after = await mcp.stats();
    const calls = results.reduce((a, r) => a + r.calls, 0);
    const ok = results.reduce((a, r) => a + r.ok, 0);
    console.log(`mcp: ${PROCESSES} processes, ${calls} tool calls, ${ok} succeeded, ${stats.refresh_requests} refreshes `
      + `(${stats.refresh_successes} ok) in ${elapsedS.toFixed(1)} s, ${stats.duplicate_presentations} duplicate presentations, `
      + `${stats.grants_revoked} grants revoked, ${after.refused - before.refused} tokens refused by the MCP server`);
    for (const r of results) assert.deepEqual(r.failures, [], 'every call succeeds');
    assert.equal(ok, calls);
    // Each process calls until the end (6.5 s, 65 calls on an idle machine); a loaded 2-core
    // machine makes fewer, and the bound only proves that every process lived through the run.
    assert.ok(calls >= PROCESSES * 20, `only ${calls} calls`);
    assert.equal(stats.duplicate_presentations, 0);
    assert.equal(stats.grants_revoked, 0);
    assert.equal(stats.invalid_grant, 0);
    assert.equal(stats.refresh_successes, stats.refresh_requests);
    // credlock counts a 2 s token as 1 s (a second for the server's rounding) and refreshes it
    // when less than half of that is left (its min-valid, capped at half the lifetime): at
    // most one refresh every 0.5 s across all the processes, plus the one in flight at the
    // end, never one per process; at least one per expiry the calls lived through.
    const intervalS = (TTL_S - 1) / 2;
    const maxRefreshes = Math.floor(elapsedS / intervalS) + 2;
    assert.ok(stats.refresh_requests >= 3, `${stats.refresh_requests} refreshes through 3 expiries`);
    assert.ok(stats.refresh_requests <= maxRefreshes, `${stats.refresh_requests} refreshes > ${maxRefreshes} (one per 0.5 s)`);
  });
});

describe('a token the MCP server refuses, through credlock/mcp', () => {
  let oauth;
  let mcp;
  before(async () => {
    oauth = await oauthServer({ accessTtlS: 3600 });
    mcp = await mcpServer(oauth.base);
  });
  after(() => {
    mcp?.stop();
    oauth?.stop();
  });

  test(`a token the server refuses, met by ${PROCESSES} processes, costs one refresh through the SDK's own 401 path`, async () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    // A valid refresh token with an access token the authorization server never issued: the
    // MCP server answers 401, and each process's SDK runs auth() and posts its handle.
    s.put('acme', { ...(await oauth.grant('conf-basic')), access_token: 'never-issued', expires_in: 3600 });
    await oauth.reset();
    const before = await mcp.stats();
    const results = await clients(PROCESSES, dir, 'acme', mcp.url, { startAtMs: Date.now() + 3000, durationMs: 0, intervalMs: 0, together: true });
    const stats = await oauth.stats();
    const after = await mcp.stats();
    console.log(`mcp 401: ${PROCESSES} processes met the refused token ${after.refused - before.refused} times, `
      + `${stats.refresh_requests} refresh, ${stats.duplicate_presentations} duplicates`);
    for (const r of results) assert.deepEqual(r.failures, []);
    // Processes that connect after the first refresh committed get the new token at once;
    // at least two meeting the refused token make one refresh a claim about concurrency.
    assert.ok(after.refused - before.refused >= 2, `the refused token was met ${after.refused - before.refused} times`);
    assert.equal(stats.refresh_requests, 1);
    assert.equal(stats.duplicate_presentations, 0);
    assert.equal(stats.grants_revoked, 0);
    const now = s.token('acme');
    assert.notEqual(now, 'never-issued');
    assert.ok(await oauth.resource(now));
  });

  test('the SDK never sees the refresh token: tokens() carries a handle, and its refresh is answered by credlock', async () => {
    const s = Store.open(tmpStore());
    const grant = await oauth.grant('conf-basic');
    s.put('acme', { ...grant, access_token: 'never-issued', expires_in: 3600 });
    const p = new CredlockOAuthProvider(s, 'acme');
    const served = await p.tokens();
    assert.ok(served.refresh_token.startsWith(HANDLE_PREFIX));
    assert.notEqual(served.refresh_token, grant.refresh_token);
    assert.equal(served.access_token, 'never-issued');
    assert.ok(served.expires_in > 3500 && served.expires_in <= 3600);
    assert.ok(Math.abs(served.expires_at - (Date.now() / 1000 + 3600)) < 5, 'the absolute expiry credlock keeps');
    await oauth.reset();
    const client = await connect(p, mcp.url);
    assert.equal((await client.callTool({ name: 'echo', arguments: {} })).content[0].text, 'ok');
    await client.close();
    assert.equal(await oauth.counter('refresh_requests'), 1);
    const now = await p.tokens();
    assert.notEqual(now.access_token, 'never-issued');
    assert.ok(now.refresh_token.startsWith(HANDLE_PREFIX) && !now.refresh_token.includes(grant.refresh_token));
    // The SDK stamped the refreshed tokens with the authorization server, and discovery is kept.
    assert.equal(now.issuer, oauth.base);
    assert.equal(JSON.parse(s.attachment('acme', ATTACHMENTS.discovery)).authorizationServerUrl, oauth.base);
  });

  test('authFetch as the transport\'s fetch without an authProvider: the 401 is answered below the SDK', async () => {
    const s = Store.open(tmpStore());
    s.put('acme', { ...(await oauth.grant('conf-basic')), access_token: 'never-issued', expires_in: 3600 });
    await oauth.reset();
    const before = await mcp.stats();
    const transport = new StreamableHTTPClientTransport(new URL(mcp.url), { fetch: authFetch(s, 'acme') });
    const client = new Client({ name: 'credlock-test', version: '1.0.0' });
    await client.connect(transport);
    assert.equal((await client.callTool({ name: 'echo', arguments: {} })).content[0].text, 'ok');
    await client.close();
    assert.equal((await mcp.stats()).refused - before.refused, 1);
    assert.equal(await oauth.counter('refresh_requests'), 1);
  });

  test('a refresh token the server revoked: the SDK is told invalid_grant and asked to log in, nothing is deleted', async () => {
    const s = Store.open(tmpStore());
    const grant = await oauth.grant('conf-basic');
    await oauth.revoke(grant.refresh_token);
    s.put('acme', { ...grant, access_token: 'never-issued', expires_in: 3600 });
    s.setAttachment('acme', ATTACHMENTS.client, JSON.stringify({ client_id: 'conf-basic', client_secret: 'basic-secret' }));
    // Without onRedirect: the error says to log in.
    const quiet = new CredlockOAuthProvider(s, 'acme');
    const c1 = await connect(quiet, mcp.url).catch((e) => e);
    assert.ok(c1 instanceof CredlockMcpError, `${c1}`);
    assert.equal(c1.code, 'login-needed');
    assert.match(c1.hint, /credlock login/);
    // With onRedirect: the SDK's browser login starts at the authorization server.
    const shown = [];
    const p = new CredlockOAuthProvider(s, 'acme', { onRedirect: (u) => shown.push(u) });
    await assert.rejects(connect(p, mcp.url), (e) => e instanceof UnauthorizedError);
    assert.equal(shown.length, 1);
    assert.equal(new URL(shown[0]).origin, oauth.base);
    assert.equal(new URL(shown[0]).searchParams.get('client_id'), 'conf-basic');
    // The verifier for that login is kept with the tenant; the tenant and its client are kept.
    assert.equal(await p.codeVerifier(), s.attachment('acme', ATTACHMENTS.verifier));
    assert.equal(s.list()[0].needsReauth, true);
    assert.equal(JSON.parse(s.attachment('acme', ATTACHMENTS.client)).client_id, 'conf-basic');
  });
});

/** Play the browser: follow the authorization URL's redirects (with cookies) to the callback's code. */
async function browse(authorizationUrl, callbackPrefix) {
  const jar = new Map();
  let at = String(authorizationUrl);
  for (let i = 0; i < 8 && !at.startsWith(callbackPrefix); i++) {
    const res = await fetch(at, { redirect: 'manual', headers: { Cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    await res.body?.cancel();
    const next = res.headers.get('location');
    if (!next) throw new Error(`the authorization server stopped at ${res.status} without a redirect`);
    at = String(new URL(next, at));
  }
  const code = new URL(at).searchParams.get('code');
  if (!code) throw new Error(`no code in the callback ${new URL(at).search.replace(/code=[^&]*/, 'code=...')}`);
  return code;
}

describe("the SDK's own login through credlock/mcp", () => {
  let oauth;
  let mcp;
  before(async () => {
    oauth = await oauthServer({ accessTtlS: 3600 });
    mcp = await mcpServer(oauth.base);
  });
  after(() => {
    mcp?.stop();
    oauth?.stop();
  });

  test('authorization code + PKCE: the verifier kept with the tenant, the tokens stored in credlock and refreshed by it', async () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    const shown = [];
    const options = {
      clientInformation: { client_id: 'device-app' },
      clientMetadata: { redirect_uris: ['http://127.0.0.1/callback'], scope: 'openid offline_access api' },
      onRedirect: (u) => shown.push(u),
    };
    const p = new CredlockOAuthProvider(s, 'acme', options);
    const transport = new StreamableHTTPClientTransport(new URL(mcp.url), { authProvider: p, fetch: p.fetch });
    const client = new Client({ name: 'credlock-test', version: '1.0.0' });
    await assert.rejects(client.connect(transport), (e) => e instanceof UnauthorizedError);
    assert.equal(shown.length, 1);
    // The tenant holds the login's verifier and discovery before it has tokens.
    assert.ok(s.attachment('acme', ATTACHMENTS.verifier));
    assert.throws(() => s.token('acme'), (e) => e.code === 'not-found');
    const code = await browse(shown[0], 'http://127.0.0.1/callback');
    await transport.finishAuth(code);
    const [t] = s.list();
    assert.deepEqual([t.tenant, t.tokenEndpoint, t.clientId, t.hasRefreshToken], ['acme', `${oauth.base}/token`, 'device-app', true]);
    // Another process's provider (a new one over the same store) connects with them at once.
    const other = new CredlockOAuthProvider(Store.open(dir), 'acme', options);
    const c2 = await connect(other, mcp.url);
    assert.equal((await c2.callTool({ name: 'echo', arguments: {} })).content[0].text, 'ok');
    await c2.close();
    assert.equal((await other.tokens()).issuer, oauth.base);
    // credlock refreshes the SDK's login with the client the SDK used.
    await oauth.reset();
    const fresh = s.refresh('acme');
    assert.equal(fresh.refreshed, true);
    // With the RFC 8707 resource the SDK's login named (the MCP server's): same audience.
    const seen = await (await fetch(`${oauth.base}/resource`, { headers: { Authorization: `Bearer ${fresh.token}` } })).json();
    assert.deepEqual([seen.ok, seen.audience], [true, `${new URL(mcp.url).origin}/mcp`]);
    assert.equal((await oauth.stats()).by_auth_method.none, 1);
  });
});

describe("the provider's state: invalidation, handles, saved tokens", () => {
  let oauth;
  before(async () => {
    oauth = await oauthServer({ accessTtlS: 3600 });
  });
  after(() => oauth?.stop());

  test("'tokens' after a lost race keeps the winner's tokens", async () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    s.put('acme', await oauth.grant('conf-basic'));
    const loser = new CredlockOAuthProvider(s, 'acme');
    const t1 = (await loser.tokens()).access_token;
    // Another process wins a refresh: the store now holds its tokens.
    const r = cli(['refresh', 'acme'], { store: dir });
    assert.equal(r.status, 0, r.stderr);
    const t2 = s.token('acme');
    assert.notEqual(t2, t1);
    // The loser's SDK, having met a failure with t1, invalidates: nothing newer is cleared.
    await loser.invalidateCredentials('tokens');
    assert.equal((await loser.tokens()).access_token, t2);
    assert.equal(s.token('acme'), t2);
    assert.ok(await oauth.resource(t2));
    // Invalidating the tokens it served itself hides them from this provider only, and
    // deletes nothing: other processes keep them, and a new login or refresh shows through.
    await loser.invalidateCredentials('tokens');
    assert.equal(await loser.tokens(), undefined);
    assert.equal((await new CredlockOAuthProvider(s, 'acme').tokens()).access_token, t2);
    assert.deepEqual(s.list().map((t) => [t.tenant, t.hasRefreshToken]), [['acme', true]]);
    const t3 = s.refresh('acme').token;
    assert.equal((await loser.tokens()).access_token, t3);
  });

  test("no handle reaches the network: another tenant's or an unreadable one is refused by the provider's fetch", async () => {
    const s = Store.open(tmpStore());
    s.put('acme', await oauth.grant('conf-basic'));
    const p = new CredlockOAuthProvider(s, 'acme');
    await oauth.reset();
    const post = (rt) => p.fetch(`${oauth.base}/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt }),
    });
    for (const [rt, code] of [[`${HANDLE_PREFIX}other:${'a'.repeat(32)}`, /tenant other reached the provider of tenant acme/], [`${HANDLE_PREFIX}garbage`, /cannot read/]]) {
      const r = await post(rt);
      assert.equal(r.status, 503);
      const body = await r.json();
      assert.equal(body.error, 'temporarily_unavailable');
      assert.match(body.error_description, code);
      assert.match(body.error_description, /what to do: /);
    }
    assert.equal(await oauth.counter('refresh_requests'), 0);
    // The provider's own handle is answered by credlock, with a new handle.
    const own = await post((await p.tokens()).refresh_token);
    assert.equal(own.status, 200);
    const reply = await own.json();
    assert.ok(reply.refresh_token.startsWith(HANDLE_PREFIX));
    assert.equal(reply.access_token, s.token('acme'));
    assert.equal(await oauth.counter('refresh_requests'), 1);
  });

  test("'client', 'verifier', 'discovery' remove their attachments; tokens stay", async () => {
    const s = Store.open(tmpStore());
    s.put('acme', await oauth.grant('conf-basic'));
    const p = new CredlockOAuthProvider(s, 'acme');
    await p.saveClientInformation({ client_id: 'conf-basic', issuer: oauth.base });
    await p.saveCodeVerifier('v'.repeat(43));
    await p.saveDiscoveryState({ authorizationServerUrl: oauth.base });
    await p.invalidateCredentials('verifier');
    await assert.rejects(p.codeVerifier(), (e) => e.code === 'no-code-verifier');
    await p.invalidateCredentials('client');
    assert.equal(s.attachment('acme', ATTACHMENTS.client), null);
    // Without a registration, the client the tokens were stored with.
    assert.deepEqual(await p.clientInformation(), { client_id: 'conf-basic' });
    await p.invalidateCredentials('discovery');
    assert.equal(await p.discoveryState(), undefined);
    assert.ok((await p.tokens()).access_token);
  });

  test('saveTokens of the SDK\'s own login stores them with the token endpoint and client that refresh them', async () => {
    const s = Store.open(tmpStore());
    const p = new CredlockOAuthProvider(s, 'acme');
    // A client registered before any tokens: the tenant has attachments and no tokens yet.
    await p.saveClientInformation({ client_id: 'conf-post', client_secret: 'post-secret', issuer: oauth.base });
    const metadata = await (await fetch(`${oauth.base}/.well-known/oauth-authorization-server`)).json();
    await p.saveDiscoveryState({ authorizationServerUrl: oauth.base, authorizationServerMetadata: metadata });
    assert.equal(await p.tokens(), undefined);
    const { token_endpoint: _, client_id: __, client_secret: ___, client_auth: ____, ...login } = await oauth.grant('conf-post');
    await p.saveTokens({ ...login, issuer: oauth.base });
    const [t] = s.list();
    assert.deepEqual([t.tokenEndpoint, t.clientId], [metadata.token_endpoint, 'conf-post']);
    assert.equal((await p.tokens()).issuer, oauth.base);
    await oauth.reset();
    const fresh = s.refresh('acme');
    assert.ok(await oauth.resource(fresh.token));
    assert.equal((await oauth.stats()).by_auth_method.client_secret_basic, 1, 'the method the SDK would choose');
  });
});

describe('authFetch', () => {
  let oauth;
  before(async () => {
    oauth = await oauthServer({ accessTtlS: 3600 });
  });
  after(() => oauth?.stop());

  test('a 401 costs one refresh and one retry', async () => {
    const s = Store.open(tmpStore());
    s.put('acme', { ...(await oauth.grant('conf-basic')), access_token: 'never-issued', expires_in: 3600 });
    await oauth.reset();
    const f = authFetch(s, 'acme');
    const res = await f(`${oauth.base}/resource`);
    assert.equal(res.status, 200);
    const stats = await oauth.stats();
    assert.deepEqual([stats.refresh_requests, stats.resource_calls, stats.resource_rejected], [1, 2, 1]);
    // The next request uses the new token at once.
    assert.equal((await f(`${oauth.base}/resource`)).status, 200);
    assert.equal(await oauth.counter('refresh_requests'), 1);
  });

  test('a resource refusing every token: one refresh, one retry, the second 401 returned', async () => {
    const s = Store.open(tmpStore());
    s.put('acme', await oauth.grant('conf-basic'));
    let hits = 0;
    const bodies = [];
    const refusing = http.createServer((req, res) => {
      hits += 1;
      let b = '';
      req.on('data', (d) => { b += d; });
      req.on('end', () => {
        bodies.push(b);
        res.writeHead(401, { 'WWW-Authenticate': 'Bearer error="invalid_token"' }).end();
      });
    });
    await new Promise((r) => refusing.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${refusing.address().port}/`;
    try {
      await oauth.reset();
      const f = authFetch(s, 'acme');
      const res = await f(url, { method: 'POST', body: 'payload' });
      assert.equal(res.status, 401);
      assert.deepEqual([hits, bodies], [2, ['payload', 'payload']], 'one retry, with the body again');
      assert.equal(await oauth.counter('refresh_requests'), 1);
      // A streamed body cannot be sent twice: its 401 comes back, nothing is refreshed.
      hits = 0;
      const stream = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('once')); c.close(); } });
      const r2 = await f(url, { method: 'POST', body: stream, duplex: 'half' });
      assert.equal(r2.status, 401);
      assert.equal(hits, 1);
      assert.equal(await oauth.counter('refresh_requests'), 1);
    } finally {
      refusing.close();
    }
  });
});
