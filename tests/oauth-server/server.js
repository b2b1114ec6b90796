// Test-only OAuth 2.0 authorization server for credlock integration tests.
//
// The OAuth logic (client authentication, refresh-token rotation, reuse
// detection, grant revocation) is oidc-provider's own, unmodified. This file
// only adds, as one Koa middleware placed in front of the provider:
//   * /test/*   endpoints to seed grants, read counters and inject faults,
//   * /resource a tiny protected resource that checks access tokens,
//   * a wrapper around POST /token that counts refresh-token presentations and
//     applies injected faults. With no fault armed, requests pass through
//     untouched.
//
// It listens on 127.0.0.1 only. State lives in memory and dies with the process.
// Token values are never logged; only SHA-256 prefixes.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';
// The built-in memory adapter, used as-is (it keeps the per-grant index that
// revokeByGrantId needs). Only its backing store is replaced, see TtlStore.
// oidc-provider has no "exports" map, so this deep import is allowed, and the
// version is pinned exactly in package.json.
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
// How the provider stores user codes ("BCDF-GHJK" -> "BCDFGHJK"), same deep-import rule.
import { normalize as normalizeUserCode } from 'oidc-provider/lib/helpers/user_codes.js';

// ---------------------------------------------------------------------------
// Configuration (env)
// ---------------------------------------------------------------------------

function intEnv(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  return n;
}

const HOST = '127.0.0.1'; // never anything else: this server hands out credentials freely
// Namespaced so that a PORT variable set for something else (CI) is not picked up.
const PORT = intEnv('OAUTH_SERVER_PORT', 0); // 0 = ephemeral
const ACCESS_TTL = intEnv('ACCESS_TTL_SECONDS', 2);
const REFRESH_TTL = intEnv('REFRESH_TTL_SECONDS', 3600);
// The grant outlives its refresh tokens: a rotated token gets a fresh
// REFRESH_TTL, and the grant must still exist when it is presented.
const GRANT_TTL = intEnv('GRANT_TTL_SECONDS', Math.max(REFRESH_TTL * 10, 86400));
const HANG_MS_DEFAULT = intEnv('HANG_SECONDS', 60) * 1000;
const SLOW_MS_DEFAULT = intEnv('SLOW_MS', 2000);
// Leaked servers (a test that crashed before stop.sh) exit on their own.
const MAX_LIFETIME = intEnv('MAX_LIFETIME_SECONDS', 3600); // 0 = forever
const BODY_LIMIT = 56 * 1024; // same limit oidc-provider applies
// Device flow (RFC 8628): the polling interval the device authorization reply announces
// (oidc-provider sends none, which means 5 s), and the code lifetime of the client
// 'device-short' (for tests of abandoned logins); other clients' codes live 600 s.
const DEVICE_INTERVAL = intEnv('DEVICE_INTERVAL_SECONDS', 1);
const DEVICE_SHORT_TTL = intEnv('DEVICE_SHORT_TTL_SECONDS', 4);

if (ACCESS_TTL < 1 || REFRESH_TTL < 1) {
  throw new Error('ACCESS_TTL_SECONDS and REFRESH_TTL_SECONDS must be >= 1');
}

const SCOPES = ['openid', 'offline_access', 'api'];
const DEFAULT_SCOPE = SCOPES.join(' ');
const FAULT_MODES = new Set([
  'http500', 'http503_html', 'hang', 'malformed', 'no_expires_in', 'cut_after_rotate', 'slow',
  'redirect', 'huge', 'huge_chunked',
]);
// What the `huge` faults send: more than any client should read as a token response.
const HUGE_BYTES = 2 * 1024 * 1024;
// Faults for device-code polls (POST /test/device-fault), one consumed per poll.
const DEVICE_FAULT_MODES = new Set([
  'slow_down', 'malformed', 'wrong_token_type', 'missing_access_token', 'huge',
]);

// ---------------------------------------------------------------------------
// Logging: stderr only, never a token value.
// ---------------------------------------------------------------------------

function log(msg) {
  process.stderr.write(`${new Date().toISOString()} [oauth-server] ${msg}\n`);
}

const sha256 = (s) => createHash('sha256').update(s).digest('hex');
const short = (hex) => (hex ? hex.slice(0, 12) : '-');
// Grant ids are identifiers, not bearer credentials, but keep log lines short.
const shortId = (id) => (id ? String(id).slice(0, 10) : '-');

// ---------------------------------------------------------------------------
// Storage: an unbounded Map with per-entry expiry. The default store of
// oidc-provider's memory adapter is an LRU capped at 1000 entries; in a long
// test run that could silently evict a consumed refresh token, which would
// turn "reuse => revoke the grant" into a plain "not found" without revoking.
// Implements the get/set(key, value, {maxAge})/delete interface MemoryAdapter uses.
// ---------------------------------------------------------------------------

class TtlStore {
  #map = new Map();

  get(key) {
    const entry = this.#map.get(key);
    if (!entry) return undefined;
    if (entry.expiry !== undefined && entry.expiry <= Date.now()) {
      this.#map.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key, value, { maxAge } = {}) {
    const expiry = typeof maxAge === 'number' && Number.isFinite(maxAge) ? Date.now() + maxAge : undefined;
    this.#map.set(key, { value, expiry });
    return this;
  }

  delete(key) {
    return this.#map.delete(key);
  }

  sweep() {
    const now = Date.now();
    for (const [key, entry] of this.#map) {
      if (entry.expiry !== undefined && entry.expiry <= now) this.#map.delete(key);
    }
  }
}

const store = new TtlStore();

// Every access token's expiry as issued (sha256 of the token -> exp in ms), kept after the
// token itself is gone: a rejected /resource call says whether the token had expired, and
// since when, or was never valid or revoked. Tests judge a rejection by the token's own
// expiry, not by how long their round trip took. Forgotten an hour after the expiry.
const accessExpiryMs = new Map();
class RecordingAdapter extends MemoryAdapter {
  async upsert(id, payload, expiresIn) {
    if (this.model === 'AccessToken' && typeof payload.exp === 'number') {
      accessExpiryMs.set(sha256(id), payload.exp * 1000);
    }
    return super.upsert(id, payload, expiresIn);
  }
}

setInterval(() => {
  store.sweep();
  const forget = Date.now() - 3600_000;
  for (const [hash, expMs] of accessExpiryMs) if (expMs < forget) accessExpiryMs.delete(hash);
}, 60_000).unref();

// ---------------------------------------------------------------------------
// Counters (GET /test/stats, POST /test/reset)
// ---------------------------------------------------------------------------

function freshStats() {
  return {
    refresh_requests: 0, // every POST /token with grant_type=refresh_token, faulted or not
    refresh_successes: 0, // real exchanges that returned 200 (token rotated server-side)
    invalid_grant: 0,
    duplicate_presentations: 0, // a refresh token presented that was already presented before
    grants_revoked: 0, // oidc-provider 'grant.revoked' events (reuse detection, revocation endpoint)
    errors: {}, // error code -> count, for every non-200 real exchange
    // How the client authenticated on refresh requests. oidc-provider accepts
    // either secret transport (Basic header or form body) for both
    // client_secret_basic and client_secret_post clients, so this is the only
    // place a test can see which one a client actually used.
    by_auth_method: {},
    faults_injected: {}, // mode -> count
    by_grant: {},
    resource_calls: 0,
    resource_rejected: 0,
    device_authorizations: 0, // POST /device/auth answered 200
    device_polls: 0, // POST /token with the device_code grant
    device_poll_ms: [], // Date.now() of each of those polls, for interval checks
    device_approvals: 0, // /test/device approve or deny
    revocations: 0, // POST /token/revocation
    authorizations: 0, // /interaction/:uid completed (browser flow)
    code_exchanges: 0, // POST /token with grant_type=authorization_code (browser flow)
    recent: [], // last RECENT_MAX refresh presentations, hashes only
  };
}
const RECENT_MAX = 200;

let stats = freshStats();
let presented = new Set(); // sha256 of every refresh token presented since last reset
const tokenGrant = new Map(); // sha256(refresh token) -> { grantId, clientId, accountId }; survives reset
let faults = []; // queue of { mode, delayMs, holdMs }, one consumed per refresh request
let deviceFaults = []; // queue of modes, one consumed per device-code poll

function grantStats(grantId, info = {}) {
  const key = grantId || 'unknown';
  stats.by_grant[key] ||= {
    client_id: info.clientId ?? null,
    account: info.accountId ?? null,
    refresh_requests: 0,
    refresh_successes: 0,
    invalid_grant: 0,
    duplicate_presentations: 0,
    revoked: false,
  };
  const g = stats.by_grant[key];
  g.client_id ??= info.clientId ?? null;
  g.account ??= info.accountId ?? null;
  return g;
}

// Per-token serialization of real exchanges. oidc-provider's refresh handler
// reads the token, checks `consumed`, then consumes it; with the in-memory
// adapter no I/O happens in between, so two concurrent presentations already
// serialize in practice. This makes it explicit rather than a timing
// accident: the second presentation of a token always sees it consumed, so a
// double spend by two racing clients is always detected (invalid_grant +
// grant revoked), as with a transactional store.
const inflight = new Map(); // sha256 -> tail promise of the queue for that token
async function withTokenLock(hash, fn) {
  if (!hash) return fn();
  const prev = inflight.get(hash) ?? Promise.resolve();
  let release;
  const mine = new Promise((resolve) => { release = resolve; });
  const tail = prev.then(() => mine);
  inflight.set(hash, tail);
  await prev;
  try {
    return await fn();
  } finally {
    release();
    if (inflight.get(hash) === tail) inflight.delete(hash);
  }
}

function rememberIssued(refreshToken, grantId, clientId, accountId) {
  if (refreshToken) tokenGrant.set(sha256(refreshToken), { grantId, clientId, accountId });
}

// ---------------------------------------------------------------------------
// Small HTTP helpers for our own endpoints
// ---------------------------------------------------------------------------

async function readRawBody(req) {
  // destroyOnReturn:false, like oidc-provider's own reader: do not destroy the
  // request stream once drained.
  const chunks = [];
  let size = 0;
  for await (const chunk of req.iterator({ destroyOnReturn: false })) {
    size += chunk.length;
    if (size > BODY_LIMIT) throw Object.assign(new Error('request entity too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

async function readJson(ctx) {
  const raw = await readRawBody(ctx.req);
  if (raw.length === 0) return {};
  try {
    const parsed = JSON.parse(raw.toString('utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    return parsed;
  } catch {
    throw Object.assign(new Error('body must be a JSON object'), { status: 400 });
  }
}

function sendJson(ctx, status, body) {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'application/json';
  ctx.body = JSON.stringify(body);
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// ---------------------------------------------------------------------------
// Build the provider. The issuer must contain the real port, so we bind first
// and construct the Provider once the ephemeral port is known.
// ---------------------------------------------------------------------------

const server = http.createServer();
server.listen(PORT, HOST);
await new Promise((resolve, reject) => {
  server.once('listening', resolve);
  server.once('error', reject);
});
const { port } = server.address();
const ISSUER = `http://${HOST}:${port}`;

// A fresh RS256 signing key per run (ID tokens are issued on refresh because
// the scope contains openid). Without `jwks`, oidc-provider would fall back to
// a well-known development key and print a warning.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' };

const clientCommon = {
  grant_types: ['authorization_code', 'refresh_token'],
  // oidc-provider insists on redirect_uris/response_types for authorization_code
  // clients. Nothing is ever redirected there: grants are seeded via /test/grant.
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/callback'],
};

const provider = new Provider(ISSUER, {
  clients: [
    {
      ...clientCommon, client_id: 'conf-basic', client_secret: 'basic-secret', token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      ...clientCommon, client_id: 'conf-post', client_secret: 'post-secret', token_endpoint_auth_method: 'client_secret_post',
    },
    // A public (secretless) client, as a CLI or desktop app would be: 'native'
    // lets its loopback redirect_uri validate.
    {
      ...clientCommon, client_id: 'public-app', token_endpoint_auth_method: 'none', application_type: 'native',
    },
    // Login clients: public and native (any loopback port is a valid redirect, RFC 8252
    // §7.3), allowed the device flow. 'device-short' gets device codes that expire in
    // DEVICE_SHORT_TTL_SECONDS.
    ...['device-app', 'device-short'].map((id) => ({
      ...clientCommon,
      client_id: id,
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'authorization_code', 'refresh_token'],
    })),
  ],
  scopes: SCOPES,
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  adapter: (name) => new RecordingAdapter(name, store, 0),

  // Accounts are whatever /test/grant says; every account id exists.
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },

  // Rotate on EVERY refresh, for every client. The default only rotates public
  // clients, and confidential ones once >=70% of the token's TTL has passed.
  rotateRefreshToken: true,

  // The browser flow (the authorization_code grant) follows the default, as an OpenID
  // provider does: a refresh token only when offline_access was granted, which the
  // authorization request keeps only with prompt=consent (OpenID Connect Core §11).
  // The device flow's clients always get one. (The refresh_token grant always returns
  // the rotated token.)
  issueRefreshToken: async (ctx, client, source) => client.grantTypeAllowed('refresh_token')
    && (ctx.oidc.params?.grant_type !== 'authorization_code' || source.scopes.has('offline_access')),

  // Fixed TTLs. Functions that ignore ctx, because /test/grant builds tokens
  // outside any provider request context. The defaults also tie refresh
  // tokens of public 'web' clients to the rotated token's remaining TTL.
  ttl: {
    AccessToken: () => ACCESS_TTL,
    RefreshToken: () => REFRESH_TTL,
    Grant: () => GRANT_TTL,
    IdToken: () => 3600,
    AuthorizationCode: () => 60,
    Interaction: () => 3600,
    DeviceCode: (_ctx, _token, client) => (client?.clientId === 'device-short' ? DEVICE_SHORT_TTL : 600),
    Session: () => 86400,
  },

  // Default is 15 s, which would keep a 2 s access token valid for 17 s.
  clockTolerance: 0,

  routes: { token: '/token' },

  // The browser flow's login and consent: /interaction/:uid (below) signs in 'alice' and
  // grants what was asked, with no page in between, so a test can follow the redirects.
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },

  features: {
    // No login UI: grants are seeded through /test/grant, device codes approved through
    // /test/device, browser logins completed by /interaction/:uid.
    devInteractions: { enabled: false },
    // RFC 8628, at /device/auth (device authorization) and /device (verification page).
    deviceFlow: { enabled: true },
    // Lets tests revoke a refresh token out-of-band (RFC 7009), POST /token/revocation.
    // Policy as the default one (a client may revoke only its own tokens),
    // spelled out to silence the "you SHOULD change it" notice.
    revocation: {
      enabled: true,
      allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
    },
    // RFC 8707, on by default: MCP clients (rmcp) name the MCP server a token is for with
    // `resource` in the authorization request and every token request. Any http URL on
    // 127.0.0.1 is a resource here, with opaque tokens like every other (the default
    // refuses every resource). A request without `resource` is unchanged.
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (!/^http:\/\/127\.0\.0\.1(:\d+)?(\/|$)/.test(resourceIndicator)) {
          throw new errors.InvalidTarget();
        }
        return { scope: 'api', audience: resourceIndicator, accessTokenFormat: 'opaque' };
      },
    },
  },
});

// ---------------------------------------------------------------------------
// Provider events -> counters / logs. These carry the Koa ctx, so the token
// wrapper below can read what happened inside the provider.
// ---------------------------------------------------------------------------

provider.on('grant.revoked', (ctx, grantId) => {
  stats.grants_revoked += 1;
  grantStats(grantId).revoked = true;
  log(`grant revoked grant=${shortId(grantId)} route=${ctx?.oidc?.route ?? '-'}`);
});

provider.on('grant.error', (ctx, err) => {
  // error_detail is oidc-provider's internal reason ("refresh token already
  // used", "grant not found", ...). It never contains token values.
  ctx.state.oauthErrorDetail = err?.error_detail ?? err?.error_description;
});

provider.on('server_error', (ctx, err) => {
  log(`server_error path=${ctx.path} ${err?.name}: ${err?.message}`);
});

// ---------------------------------------------------------------------------
// Test endpoints
// ---------------------------------------------------------------------------

// POST /test/grant {"client_id","account","scope"} -> token response + grant_id.
// Built from the provider's own models exactly like its authorization_code
// grant does (lib/helpers/grant_common.js issueTokens), so the refresh token is
// indistinguishable from one obtained through a browser flow:
//   Grant        accountId, clientId, OIDC scope (the refresh grant re-reads
//                the grant and filters the access token scope through it)
//   RefreshToken accountId, client, grantId, gty, scope, rotations: 0,
//                iiat (set by the constructor), expiresWithSession: false
//                (true would bind it to a browser Session we do not have and
//                RefreshToken.find would return nothing), authTime
//   AccessToken  accountId, client, grantId, gty, scope, expiresWithSession
async function seedGrant(ctx) {
  const body = await readJson(ctx);
  const clientId = body.client_id;
  const accountId = body.account ?? 'alice';
  const scope = body.scope ?? DEFAULT_SCOPE;

  if (typeof clientId !== 'string') return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'client_id is required' });
  if (typeof accountId !== 'string' || !accountId) return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'account must be a non-empty string' });
  if (typeof scope !== 'string') return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'scope must be a string' });
  const scopes = scope.split(' ').filter(Boolean);
  const unknown = scopes.filter((s) => !SCOPES.includes(s));
  if (unknown.length) return sendJson(ctx, 400, { error: 'invalid_scope', error_description: `unknown scope(s): ${unknown.join(' ')}` });

  const client = await provider.Client.find(clientId);
  if (!client) return sendJson(ctx, 400, { error: 'invalid_client', error_description: `unknown client_id ${clientId}` });

  const normScope = [...new Set(scopes)].join(' ');
  const authTime = Math.floor(Date.now() / 1000);

  const grant = new provider.Grant({ accountId, clientId });
  grant.addOIDCScope(normScope);
  const grantId = await grant.save();

  const common = {
    accountId, client, grantId, gty: 'authorization_code', expiresWithSession: false,
  };

  const rt = new provider.RefreshToken({
    ...common, scope: normScope, rotations: 0, authTime,
  });
  const refreshToken = await rt.save();

  const at = new provider.AccessToken({ ...common, scope: normScope });
  const accessToken = await at.save();

  rememberIssued(refreshToken, grantId, clientId, accountId);
  grantStats(grantId, { clientId, accountId });
  log(`seeded grant=${shortId(grantId)} client=${clientId} account=${accountId} rt=${short(sha256(refreshToken))}`);

  return sendJson(ctx, 200, {
    access_token: accessToken,
    refresh_token: refreshToken,
    token_type: at.tokenType,
    expires_in: at.expiration,
    scope: normScope,
    grant_id: grantId,
  });
}

// POST /test/device {"user_code", "account"?, "action"?: "approve"|"deny"}: what a user
// does on the verification page (RFC 8628 §3.3), done directly: approve grants the scopes
// the device asked for to the account, as the provider's own device flow would
// (lib/actions/authorization/device.js); deny makes the next poll answer access_denied.
async function completeDevice(ctx) {
  const body = await readJson(ctx);
  if (typeof body.user_code !== 'string') return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'user_code is required' });
  const accountId = body.account ?? 'alice';
  const action = body.action ?? 'approve';
  const code = await provider.DeviceCode.findByUserCode(normalizeUserCode(body.user_code), { ignoreExpiration: true });
  if (!code) return sendJson(ctx, 404, { error: 'not_found', error_description: 'no such user code' });
  if (code.isExpired) return sendJson(ctx, 400, { error: 'expired_token', error_description: 'the code has expired' });
  if (code.accountId || code.error) return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'the code was already used' });
  stats.device_approvals += 1;
  if (action === 'deny') {
    Object.assign(code, { error: 'access_denied', errorDescription: 'denied by the test' });
    await code.save();
    log(`device code denied client=${code.clientId}`);
    return sendJson(ctx, 200, { ok: true });
  }
  const scope = (code.params?.scope ?? DEFAULT_SCOPE).split(' ').filter((s) => SCOPES.includes(s)).join(' ');
  const grant = new provider.Grant({ accountId, clientId: code.clientId });
  grant.addOIDCScope(scope);
  const grantId = await grant.save();
  Object.assign(code, {
    accountId, grantId, scope, authTime: Math.floor(Date.now() / 1000),
  });
  await code.save();
  grantStats(grantId, { clientId: code.clientId, accountId });
  log(`device code approved client=${code.clientId} account=${accountId} grant=${shortId(grantId)}`);
  return sendJson(ctx, 200, { ok: true, grant_id: grantId });
}

// GET /interaction/:uid: the browser flow's login and consent in one step, for 'alice' (or
// ?account=NAME on the authorization request's login_hint). Redirects back to the provider,
// which redirects to the client's callback with the code.
async function completeInteraction(ctx) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const accountId = details.params.login_hint || 'alice';
  const scope = String(details.params.scope ?? '').split(' ').filter((s) => SCOPES.includes(s)).join(' ');
  const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(scope);
  // A resource the request names (RFC 8707, as MCP clients send it) is granted `api`, the
  // one scope a resource here serves, when it was asked for.
  if (scope.split(' ').includes('api')) {
    for (const resource of [details.params.resource ?? []].flat()) grant.addResourceScope(resource, 'api');
  }
  const grantId = await grant.save();
  grantStats(grantId, { clientId: details.params.client_id, accountId });
  stats.authorizations += 1;
  ctx.respond = false;
  await provider.interactionFinished(ctx.req, ctx.res, {
    login: { accountId }, consent: { grantId },
  }, { mergeWithLastSubmission: false });
  return undefined;
}

async function armDeviceFault(ctx) {
  const body = await readJson(ctx);
  const count = body.count ?? 1;
  if (!DEVICE_FAULT_MODES.has(body.mode)) {
    return sendJson(ctx, 400, { error: 'invalid_request', error_description: `mode must be one of ${[...DEVICE_FAULT_MODES].join(', ')}` });
  }
  if (!Number.isSafeInteger(count) || count < 0) {
    return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'count must be a non-negative integer' });
  }
  for (let i = 0; i < count; i += 1) deviceFaults.push(body.mode);
  return sendJson(ctx, 200, { ok: true, pending: deviceFaults });
}

// A device-code poll: counted, and answered by a fault if one is armed.
async function devicePoll(ctx, next) {
  stats.device_polls += 1;
  stats.device_poll_ms.push(Date.now());
  const fault = deviceFaults.shift();
  log(`device poll fault=${fault ?? 'none'}`);
  switch (fault) {
    case 'slow_down':
      return sendJson(ctx, 400, { error: 'slow_down', error_description: 'injected fault: slow_down' });
    case 'malformed':
      ctx.respond = false;
      ctx.res.writeHead(200, { 'Content-Type': 'application/json', Connection: 'close' });
      ctx.res.end('{"access_token": "x",');
      return undefined;
    case 'huge':
      // Over the 1 MiB a client reads.
      return sendJson(ctx, 200, { access_token: 'x', token_type: 'Bearer', padding: 'p'.repeat(2 * 1024 * 1024) });
    default:
      break;
  }
  await next();
  const ok = ctx.status === 200 && ctx.body && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body);
  if (ok && ctx.body.refresh_token) {
    rememberIssued(ctx.body.refresh_token, ctx.oidc?.entities?.Grant?.jti, ctx.oidc?.client?.clientId, ctx.oidc?.entities?.DeviceCode?.accountId);
  }
  if (ok && fault === 'wrong_token_type') ctx.body.token_type = 'DPoP';
  if (ok && fault === 'missing_access_token') delete ctx.body.access_token;
  return undefined;
}

async function armFault(ctx) {
  const body = await readJson(ctx);
  const { mode } = body;
  const count = body.count ?? 1;
  if (!FAULT_MODES.has(mode)) {
    return sendJson(ctx, 400, { error: 'invalid_request', error_description: `mode must be one of ${[...FAULT_MODES].join(', ')}` });
  }
  if (!Number.isSafeInteger(count) || count < 0) {
    return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'count must be a non-negative integer' });
  }
  const delayMs = body.delay_ms ?? SLOW_MS_DEFAULT;
  const holdMs = body.hold_ms ?? HANG_MS_DEFAULT;
  if (!Number.isSafeInteger(delayMs) || delayMs < 0 || !Number.isSafeInteger(holdMs) || holdMs < 0) {
    return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'delay_ms/hold_ms must be non-negative integers' });
  }
  for (let i = 0; i < count; i += 1) faults.push({ mode, delayMs, holdMs });
  log(`fault armed mode=${mode} count=${count} pending=${faults.length}`);
  return sendJson(ctx, 200, { ok: true, pending: faults.map((f) => f.mode) });
}

// GET /resource, Authorization: Bearer <access token>
async function resource(ctx) {
  stats.resource_calls += 1;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('authorization'));
  // AccessToken.find returns undefined for unknown, expired (clockTolerance 0)
  // and revoked (deleted with their grant) tokens.
  const at = m ? await provider.AccessToken.find(m[1]) : undefined;
  if (!at || at.isExpired) {
    stats.resource_rejected += 1;
    // Why, for the tests: "expired" (at or after expires_at_ms, the token's exp as issued,
    // on the server's clock now_ms), "revoked" (issued here, not expired, gone with its
    // grant) or "unknown" (never issued here). The isExpired check is exp <= now in whole
    // seconds, which is now_ms >= expires_at_ms.
    const nowMs = Date.now();
    const expiresAtMs = m ? accessExpiryMs.get(sha256(m[1])) ?? null : null;
    let reason = 'unknown';
    if (expiresAtMs !== null) reason = nowMs >= expiresAtMs ? 'expired' : 'revoked';
    ctx.set('WWW-Authenticate', `Bearer realm="${ISSUER}", error="invalid_token"`);
    return sendJson(ctx, 401, {
      ok: false, error: 'invalid_token', reason, expires_at_ms: expiresAtMs, now_ms: nowMs,
    });
  }
  return sendJson(ctx, 200, {
    ok: true, account: at.accountId, client_id: at.clientId, scope: at.scope ?? null,
    // The RFC 8707 resource the token is for (null: none was named).
    audience: at.aud ?? null,
  });
}

// ---------------------------------------------------------------------------
// POST /token wrapper: counting + fault injection for refresh requests.
// ---------------------------------------------------------------------------

// Which client authentication the request carried (not whether it was valid).
function authMethodOf(ctx, params) {
  if (/^Basic\s/i.test(ctx.get('authorization'))) return 'client_secret_basic';
  if (params.has('client_secret')) return 'client_secret_post';
  if (params.has('client_assertion')) return 'client_assertion';
  if (params.has('client_id')) return 'none';
  return 'missing';
}

function clientIdOf(ctx, params) {
  const fromProvider = ctx.oidc?.client?.clientId;
  if (fromProvider) return fromProvider;
  if (params.get('client_id')) return params.get('client_id');
  const basic = /^Basic\s+(\S+)$/i.exec(ctx.get('authorization'));
  if (basic) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i > 0) {
      try { return decodeURIComponent(decoded.slice(0, i).replace(/\+/g, ' ')); } catch { /* ignore */ }
    }
  }
  return null;
}

async function tokenEndpoint(ctx, next) {
  // Only form bodies can be refresh requests. Anything else goes straight to
  // the provider, which will reject it or handle it.
  if (!ctx.is('application/x-www-form-urlencoded')) return next();

  // We need grant_type and refresh_token BEFORE the provider runs (to decide
  // on faults), so read the body here and hand it over as ctx.request.body:
  // oidc-provider's body parser accepts an already-read body
  // (lib/shared/selective_body.js). It prints one "already parsed request body
  // detected" warning the first time; that is expected.
  const raw = await readRawBody(ctx.req);
  ctx.request.body = raw;
  const params = new URLSearchParams(raw.toString('utf8'));
  if (params.get('grant_type') === 'urn:ietf:params:oauth:grant-type:device_code') return devicePoll(ctx, next);
  if (params.get('grant_type') === 'authorization_code') stats.code_exchanges += 1;
  if (params.get('grant_type') !== 'refresh_token') return next();

  const presentedToken = params.get('refresh_token');
  const hash = presentedToken ? sha256(presentedToken) : null;
  const known = hash ? tokenGrant.get(hash) : undefined;
  const duplicate = hash ? presented.has(hash) : false;
  if (hash) presented.add(hash);

  const authMethod = authMethodOf(ctx, params);
  stats.refresh_requests += 1;
  if (duplicate) stats.duplicate_presentations += 1;
  stats.by_auth_method[authMethod] = (stats.by_auth_method[authMethod] ?? 0) + 1;

  const fault = faults.shift();
  if (fault) stats.faults_injected[fault.mode] = (stats.faults_injected[fault.mode] ?? 0) + 1;

  const record = (outcome, extra = {}) => {
    const grantId = extra.grantId ?? known?.grantId ?? null;
    const g = grantStats(grantId, known ?? {});
    g.refresh_requests += 1;
    if (duplicate) g.duplicate_presentations += 1;
    if (outcome === 'ok') g.refresh_successes += 1;
    if (outcome === 'invalid_grant') g.invalid_grant += 1;
    const clientId = clientIdOf(ctx, params);
    const entry = {
      at: new Date().toISOString(),
      client_id: clientId,
      auth_method: authMethod,
      grant_id: grantId,
      rt_sha256: hash ? hash.slice(0, 16) : null,
      duplicate,
      fault: fault?.mode ?? null,
      outcome,
      detail: extra.detail ?? null,
      issued_rt_sha256: extra.issuedHash ? extra.issuedHash.slice(0, 16) : null,
    };
    stats.recent.push(entry);
    if (stats.recent.length > RECENT_MAX) stats.recent.shift();
    log(`refresh client=${clientId ?? '-'} auth=${authMethod} grant=${shortId(grantId)} rt=${short(hash)}${duplicate ? ' DUPLICATE' : ''}`
      + ` fault=${fault?.mode ?? 'none'} outcome=${outcome}${extra.detail ? ` detail="${extra.detail}"` : ''}`
      + `${extra.issuedHash ? ` new_rt=${short(extra.issuedHash)}` : ''}`);
  };

  // Faults that answer without letting the provider see the request: tokens
  // are not touched.
  switch (fault?.mode) {
    case 'http500':
      record('fault:http500');
      return sendJson(ctx, 500, { error: 'server_error', error_description: 'injected fault: http500' });
    case 'http503_html':
      record('fault:http503_html');
      ctx.status = 503;
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = '<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>'
        + '<body><h1>503 Service Unavailable</h1><p>injected fault</p></body></html>\n';
      return undefined;
    case 'malformed':
      record('fault:malformed');
      // Raw write so that nothing "fixes" the truncated JSON.
      ctx.respond = false;
      ctx.res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', Connection: 'close' });
      ctx.res.end('{"access_token": "x",');
      return undefined;
    case 'redirect':
      // A client must not follow a token endpoint's redirect (it would carry the refresh
      // token elsewhere): a port nothing listens on.
      record('fault:redirect');
      ctx.status = 302;
      ctx.set('Location', 'http://127.0.0.1:1/elsewhere');
      ctx.body = '';
      return undefined;
    case 'huge':
    case 'huge_chunked': {
      record(`fault:${fault.mode}`);
      // 2 MiB of JSON whitespace, with a Content-Length or chunked without one.
      ctx.respond = false;
      const headers = { 'Content-Type': 'application/json', Connection: 'close' };
      if (fault.mode === 'huge') headers['Content-Length'] = String(HUGE_BYTES);
      ctx.res.writeHead(200, headers);
      ctx.res.write(Buffer.alloc(HUGE_BYTES / 2, 0x20));
      ctx.res.end(Buffer.alloc(HUGE_BYTES / 2, 0x20));
      return undefined;
    }
    case 'hang': {
      record('fault:hang');
      // Never answer. Hold the socket until holdMs passes or the client gives up.
      ctx.respond = false;
      const { socket } = ctx.req;
      const timer = setTimeout(() => socket.destroy(), fault.holdMs);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
      return undefined;
    }
    case 'slow':
      await sleep(fault.delayMs);
      break;
    default:
      break;
  }

  // The real exchange, done by oidc-provider.
  await withTokenLock(hash, next);

  const ok = ctx.status === 200 && ctx.body && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body);
  const issued = ok ? ctx.body.refresh_token : undefined;
  const rtEntity = ctx.oidc?.entities?.RefreshToken;
  const grantId = rtEntity?.grantId ?? known?.grantId ?? null;
  const issuedHash = issued ? sha256(issued) : null;
  if (issued) {
    tokenGrant.set(issuedHash, {
      grantId, clientId: rtEntity?.clientId ?? known?.clientId, accountId: rtEntity?.accountId ?? known?.accountId,
    });
  }

  let outcome;
  if (ok) {
    outcome = 'ok';
    stats.refresh_successes += 1;
  } else {
    outcome = (ctx.body && typeof ctx.body === 'object' && ctx.body.error) || `http${ctx.status}`;
    stats.errors[outcome] = (stats.errors[outcome] ?? 0) + 1;
    if (outcome === 'invalid_grant') stats.invalid_grant += 1;
  }
  record(outcome, { grantId, detail: ctx.state.oauthErrorDetail, issuedHash });

  // Faults that act on the real reply.
  switch (fault?.mode) {
    case 'no_expires_in':
      if (ok) delete ctx.body.expires_in;
      break;
    case 'cut_after_rotate':
      // The exchange happened (the old token is consumed, the new one saved);
      // the reply is lost in flight.
      ctx.respond = false;
      ctx.req.socket.destroy();
      break;
    default:
      break;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Routing in front of the provider. provider.use() inserts middleware before
// the provider's own router.
// ---------------------------------------------------------------------------

provider.use(async (ctx, next) => {
  try {
    if (ctx.path === '/token' && ctx.method === 'POST') return await tokenEndpoint(ctx, next);
    if (ctx.path === '/resource' && ctx.method === 'GET') return await resource(ctx);
    if (ctx.path === '/device/auth' && ctx.method === 'POST') {
      await next();
      if (ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
        stats.device_authorizations += 1;
        ctx.body.interval = DEVICE_INTERVAL;
      }
      return undefined;
    }
    if (ctx.path === '/token/revocation' && ctx.method === 'POST') {
      stats.revocations += 1;
      return await next();
    }
    if (ctx.path.startsWith('/interaction/') && ctx.method === 'GET') return await completeInteraction(ctx);
    if (ctx.path.startsWith('/test/')) {
      switch (`${ctx.method} ${ctx.path}`) {
        case 'GET /test/health':
          return sendJson(ctx, 200, { ok: true, issuer: ISSUER });
        case 'POST /test/grant':
          return await seedGrant(ctx);
        case 'GET /test/stats':
          return sendJson(ctx, 200, { ...stats, faults_pending: faults.map((f) => f.mode) });
        case 'POST /test/reset':
          // Clears counters, presentation history and pending faults. Tokens
          // and grants stay valid.
          stats = freshStats();
          presented = new Set();
          faults = [];
          deviceFaults = [];
          log('stats reset');
          return sendJson(ctx, 200, { ok: true });
        case 'POST /test/fault':
          return await armFault(ctx);
        case 'POST /test/device':
          return await completeDevice(ctx);
        case 'POST /test/device-fault':
          return await armDeviceFault(ctx);
        default:
          return sendJson(ctx, 404, { error: 'not_found' });
      }
    }
    return await next();
  } catch (err) {
    if (err.status && err.status < 500) return sendJson(ctx, err.status, { error: 'invalid_request', error_description: err.message });
    throw err;
  }
});

server.on('request', provider.callback());

// ---------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------

function shutdown(signal) {
  log(`${signal} received, exiting`);
  // Do not wait for hung sockets (fault mode "hang").
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

if (MAX_LIFETIME > 0) {
  setTimeout(() => {
    log(`MAX_LIFETIME_SECONDS=${MAX_LIFETIME} reached, exiting`);
    process.exit(0);
  }, MAX_LIFETIME * 1000).unref();
  // unref so it does not keep the loop alive; the listening server does.
}

log(`listening issuer=${ISSUER} access_ttl=${ACCESS_TTL}s refresh_ttl=${REFRESH_TTL}s pid=${process.pid}`);
// The one line on stdout: start.sh waits for it.
process.stdout.write(`READY ${ISSUER}\n`);
