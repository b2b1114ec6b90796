// credlock behind the MCP TypeScript SDK's OAuthClientProvider (@modelcontextprotocol/sdk,
// client/auth), so that every refresh an MCP client makes is credlock's: one refresh across
// every process, a durable intent, a refresh token presented at most once.
//
// What the SDK (1.32.x) does, read in its client/auth.js and client/streamableHttp.js, and
// what follows from it:
// - The transport reads `tokens()` before every request and ignores `expires_in`: so
//   `tokens()` returns credlock's access token, fresh (`tokenInfo` refreshes it ahead of its
//   expiry), and the SDK meets a 401 for an expiry only when a token dies early.
// - It refreshes only after a 401, by POSTing the `refresh_token` that `tokens()` returned
//   (read again inside `auth()`) to the token endpoint through the transport's `fetch`. So
//   `tokens()` never returns the real refresh token: in its place goes a handle naming the
//   access token served, and the provider's `fetch` answers a refresh presenting a handle
//   itself with `store.refresh` of the token the resource refused. The real refresh token
//   never leaves credlock, and processes that meet the same 401 together cost one refresh.
// - `auth()` reads `tokens()` again after the 401, by which time another process may have
//   refreshed: the handle would then name the new token. The token to refresh is the one
//   the server refused, which the provider's `fetch` saw on the 401 reply; that one is
//   presented as rejected, and credlock answers with the newer token without a refresh.
// - A refresh reply of `invalid_grant` makes `auth()` call `invalidateCredentials('tokens')`
//   and read `tokens()` again; with none it starts an interactive login. Other OAuth errors
//   except `server_error` are thrown to the caller; `server_error` and fetch failures also
//   lead to a login. So credlock's "log in again" (`reauth-needed`, ...) becomes
//   `invalid_grant`, and every other failure (a lock timeout, the token endpoint down) is
//   `temporarily_unavailable`, which reaches the caller as an error with credlock's advice.
// - `invalidateCredentials('tokens')` deletes nothing (vercel/ai #20674: a provider that
//   deletes after a lost race deletes the winner's tokens). credlock records a rejected
//   refresh token itself, durably and for every process; the provider only stops serving
//   the tokens it last served, and any newer ones (another process's refresh, a new login)
//   show through.
// - Client information, the PKCE verifier, the discovery state and the `issuer` stamp are
//   attachments of the tenant: sealed with its tokens, shared by every process, removed with
//   the tenant.
import { selectClientAuthMethod } from '@modelcontextprotocol/sdk/client/auth.js';
import { CredlockError } from './index.js';
import { sha256Hex } from './fetch.js';

export { authFetch } from './fetch.js';

/** What every refresh handle starts with; the SDK keeps and presents it as a refresh token. */
export const HANDLE_PREFIX = 'credlock-mcp.v1:';

/** Hex characters of the access token's SHA-256 a handle carries (credlock takes 16 or more). */
const HANDLE_SHA_HEX = 32;

/** The attachments the provider keeps with the tenant (names: wit/store.wit's rule). */
export const ATTACHMENTS = Object.freeze({
  client: 'mcp.client-information',
  verifier: 'mcp.code-verifier',
  discovery: 'mcp.discovery-state',
  issuer: 'mcp.issuer',
});

/** The redirect URL reported when the application gives none (see `redirectUrl`). */
export const DEFAULT_REDIRECT_URL = 'http://127.0.0.1/callback';

/** credlock error codes that mean "this tenant needs a new login". */
const LOGIN_NEEDED = new Set(['not-found', 'expired', 'reauth-needed', 'refresh-outcome-unknown']);

/** The provider's own failures, each with what to do, from one table. */
const PROBLEMS = {
  'login-needed': {
    message: (d) => `tenant ${d.tenant} needs an interactive login, and the provider was given no onRedirect to start one`,
    hint: 'log the tenant in with `credlock login TENANT ...` (or give the provider onRedirect to run the SDK\'s browser login), then call again',
  },
  'no-code-verifier': {
    message: (d) => `no PKCE code verifier is kept for tenant ${d.tenant}: the SDK asked for it without a login having started`,
    hint: 'start the login again (call the MCP server, which redirects to authorization) and finish it with the code from that redirect',
  },
  'foreign-handle': {
    message: (d) => `a credlock refresh handle for tenant ${d.handleTenant} reached the provider of tenant ${d.tenant}`,
    hint: 'give each transport the fetch of its own provider: { authProvider: provider, fetch: provider.fetch }',
  },
  'malformed-handle': {
    message: () => 'a refresh presented a credlock handle this version cannot read',
    hint: 'call again: the SDK reads tokens() anew, whose handle this provider reads; if it persists, report it as a credlock bug',
  },
  'handle-not-stored': {
    message: () => 'saveTokens received a credlock handle in place of a refresh token that credlock did not issue to this provider',
    hint: 'pass the provider\'s fetch to the transport ({ authProvider: provider, fetch: provider.fetch }) so that refreshes are answered by credlock',
  },
};

/** An error of the MCP adapter itself (store errors stay `CredlockError`). */
export class CredlockMcpError extends Error {
  constructor(code, detail = {}) {
    super(PROBLEMS[code].message(detail));
    this.name = 'CredlockMcpError';
    this.code = code;
    this.detail = detail;
    this.hint = PROBLEMS[code].hint;
  }
}

/** `credlock-mcp.v1:<tenant, URI-encoded so that its own colons are escaped>:<sha256 prefix>`. */
function makeHandle(tenant, sha) {
  return `${HANDLE_PREFIX}${encodeURIComponent(tenant)}:${sha.slice(0, HANDLE_SHA_HEX)}`;
}

/** The tenant and hash a handle names, or undefined if `value` is not a handle. */
export function parseHandle(value) {
  if (typeof value !== 'string' || !value.startsWith(HANDLE_PREFIX)) return undefined;
  const rest = value.slice(HANDLE_PREFIX.length);
  const at = rest.lastIndexOf(':');
  const sha = rest.slice(at + 1);
  if (at <= 0 || !/^[0-9a-f]{16,64}$/.test(sha)) return undefined;
  try {
    return { tenant: decodeURIComponent(rest.slice(0, at)), sha256: sha };
  } catch {
    return undefined;
  }
}

/** The form fields of a fetch body, if it is a form (what the SDK's token requests send). */
function formOf(body) {
  if (body instanceof URLSearchParams) return body;
  if (typeof body === 'string') return new URLSearchParams(body);
  return undefined;
}

function bearerOf(input, init) {
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  const auth = headers.get('authorization');
  const m = auth && /^Bearer\s+(.+)$/i.exec(auth);
  return m ? m[1].trim() : undefined;
}

function jsonReply(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' },
  });
}

/** An OAuth error reply (RFC 6749 §5.2) with credlock's message and advice as the description. */
function errorReply(e) {
  const loginNeeded = e instanceof CredlockError && LOGIN_NEEDED.has(e.code);
  const description = e instanceof Error ? `${e.message}${e.hint ? ` (what to do: ${e.hint})` : ''}` : String(e);
  return loginNeeded
    ? jsonReply(400, { error: 'invalid_grant', error_description: description })
    : jsonReply(503, { error: 'temporarily_unavailable', error_description: description });
}

const parseJson = (text) => (text == null ? undefined : JSON.parse(text));

/**
 * The MCP SDK's `OAuthClientProvider` over one tenant of a credlock `Store`. Pass both to
 * the transport: `new StreamableHTTPClientTransport(url, { authProvider: p, fetch: p.fetch })`.
 */
export class CredlockOAuthProvider {
  #store;
  #tenant;
  #opts;
  #minValid;
  /** The access token `tokens()` last served: its hash, to hide it on invalidation. */
  #servedSha256;
  /** A token `invalidateCredentials('tokens')` hid: not served again while it is the stored one. */
  #hiddenSha256;
  /** The last access token the MCP server refused (401) through this provider's fetch. */
  #refusedSha256;
  /** The RFC 8707 resource the SDK's last code exchange named (its login). */
  #loginResource;
  /**
   * The issuer `tokens()` reports, for the tokens' revision it was read at: the transport
   * calls `tokens()` before every request, and the stamp changes only with new tokens (a
   * login) or with this provider's own saves, which forget it.
   */
  #issuerFor;

  /**
   * @param store a credlock `Store`
   * @param tenant the tenant whose tokens this MCP connection uses
   * @param options `clientMetadata`, `redirectUrl`, `onRedirect(url)`, `clientInformation`
   *   (a pre-registered client), `minValid` (seconds, default credlock's 60), `fetch` (the
   *   fetch to send everything else through, default the global one), `state()`,
   *   `validateResourceURL(serverUrl, resource)` (the SDK's hook)
   */
  constructor(store, tenant, options = {}) {
    if (typeof tenant !== 'string') throw new TypeError('CredlockOAuthProvider: tenant is a string');
    this.#store = store;
    this.#tenant = tenant;
    this.#opts = options;
    this.#minValid = options.minValid;
    const base = options.fetch ?? globalThis.fetch;
    /** The fetch to give the transport (`fetch` option): it answers refreshes of handles. */
    this.fetch = (input, init) => this.#fetch(base, input, init);
    if (options.state) this.state = options.state;
    // The SDK's own hook for the RFC 8707 resource indicator of logins (its default: the
    // protected resource metadata's `resource`). The resource a login's code exchange named
    // is put as `refresh_resource`, so credlock's refreshes keep the token's audience.
    if (options.validateResourceURL) this.validateResourceURL = options.validateResourceURL;
  }

  get tenant() {
    return this.#tenant;
  }

  /**
   * Where the authorization server sends the browser back after a login. The SDK refreshes
   * only for a provider that has one (without, it runs a client-credentials grant instead),
   * so a default is reported; it is used only by a login, which needs `onRedirect`.
   */
  get redirectUrl() {
    return this.#opts.redirectUrl ?? DEFAULT_REDIRECT_URL;
  }

  get clientMetadata() {
    return this.#opts.clientMetadata ?? {
      client_name: 'credlock MCP client',
      redirect_uris: [String(this.redirectUrl)],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  async #attachment(name) {
    return this.#store.attachmentAsync(this.#tenant, name);
  }

  async #setAttachment(name, value) {
    await this.#store.setAttachmentAsync(this.#tenant, name, value);
  }

  /**
   * The client given as `clientInformation` (as kept with the tenant once the SDK stamped it
   * with its issuer), else the registration kept with the tenant, else the client the
   * tenant's tokens were stored with (a tenant logged in through credlock: the SDK needs a
   * client to refresh, and credlock holds its secret).
   */
  async clientInformation() {
    const kept = parseJson(await this.#attachment(ATTACHMENTS.client));
    const given = this.#opts.clientInformation;
    if (given) return kept?.client_id === given.client_id ? { ...given, issuer: kept.issuer } : given;
    if (kept) return kept;
    const summary = (await this.#store.listAsync()).find((t) => t.tenant === this.#tenant);
    return summary?.clientId ? { client_id: summary.clientId } : undefined;
  }

  async saveClientInformation(info) {
    await this.#setAttachment(ATTACHMENTS.client, JSON.stringify(info));
  }

  /**
   * credlock's access token, fresh (refreshed by at most one process when less than
   * `minValid` is left), with a handle in place of the refresh token; `expires_in` counts
   * from now to the absolute expiry credlock keeps (`expires_at`, Unix seconds). Undefined
   * when the tenant needs a login (no tokens, a refresh token the server rejected) or when
   * `invalidateCredentials('tokens')` hid these very tokens.
   */
  async tokens() {
    let info;
    try {
      info = await this.#store.tokenInfoAsync(this.#tenant, this.#minValid === undefined ? undefined : { minValid: this.#minValid });
    } catch (e) {
      if (e instanceof CredlockError && LOGIN_NEEDED.has(e.code)) return undefined;
      throw e;
    }
    const sha = sha256Hex(info.token);
    if (sha === this.#hiddenSha256) return undefined;
    this.#servedSha256 = sha;
    if (this.#issuerFor?.revision !== info.revision) this.#issuerFor = { revision: info.revision, issuer: await this.#issuer() };
    return this.#oauthTokens(info, sha, this.#issuerFor.issuer);
  }

  #oauthTokens(info, sha, issuer) {
    const t = { access_token: info.token, token_type: info.tokenType || 'Bearer', refresh_token: makeHandle(this.#tenant, sha) };
    if (info.expiresAtMs !== undefined) {
      t.expires_in = Math.max(0, Math.floor((info.expiresAtMs - Date.now()) / 1000));
      t.expires_at = Math.floor(info.expiresAtMs / 1000);
    }
    if (issuer) t.issuer = issuer;
    return t;
  }

  /**
   * The authorization server the tokens are bound to: the SDK's stamp when it logged in,
   * else (tokens stored through credlock) the one discovery found. The SDK compares it before
   * presenting the refresh token; a handle is worthless to any server but credlock's, which
   * refreshes at the token endpoint the tokens were stored with.
   */
  async #issuer() {
    const stamped = await this.#attachment(ATTACHMENTS.issuer);
    if (stamped) return stamped;
    return parseJson(await this.#attachment(ATTACHMENTS.discovery))?.authorizationServerUrl;
  }

  /**
   * Tokens from the SDK. A refresh's reply carries a handle: credlock already holds those
   * tokens, and only the issuer stamp is kept. Tokens of the SDK's own login are stored with
   * `put`, with the token endpoint and client that refresh them.
   */
  async saveTokens(tokens) {
    const handle = parseHandle(tokens.refresh_token);
    if (handle) {
      if (handle.tenant !== this.#tenant) throw new CredlockMcpError('foreign-handle', { tenant: this.#tenant, handleTenant: handle.tenant });
      if (tokens.issuer && (await this.#attachment(ATTACHMENTS.issuer)) !== tokens.issuer) {
        await this.#setAttachment(ATTACHMENTS.issuer, tokens.issuer);
        this.#issuerFor = undefined;
      }
      return;
    }
    if (typeof tokens.refresh_token === 'string' && tokens.refresh_token.startsWith(HANDLE_PREFIX)) {
      throw new CredlockMcpError('handle-not-stored');
    }
    const { issuer, ...response } = tokens;
    await this.#store.putAsync(this.#tenant, { ...response, ...(await this.#refreshSettings()) });
    this.#hiddenSha256 = undefined;
    this.#issuerFor = undefined;
    if (issuer) await this.#setAttachment(ATTACHMENTS.issuer, issuer);
  }

  /**
   * The token endpoint and client authentication the SDK used for its exchange, as it chose
   * them (client/auth.js `executeTokenRequest`): the discovered metadata's endpoint, else
   * `/token` at the authorization server, and `selectClientAuthMethod`'s method.
   */
  async #refreshSettings() {
    const discovery = parseJson(await this.#attachment(ATTACHMENTS.discovery));
    const metadata = discovery?.authorizationServerMetadata;
    const out = {};
    if (this.#loginResource) out.refresh_resource = this.#loginResource;
    if (metadata?.token_endpoint) out.token_endpoint = metadata.token_endpoint;
    else if (discovery?.authorizationServerUrl) out.token_endpoint = String(new URL('/token', discovery.authorizationServerUrl));
    const client = await this.clientInformation();
    if (client?.client_id) {
      out.client_id = client.client_id;
      if (client.client_secret) out.client_secret = client.client_secret;
      const method = selectClientAuthMethod(client, metadata?.token_endpoint_auth_methods_supported ?? []);
      out.client_auth = { client_secret_basic: 'basic', client_secret_post: 'post', none: 'none' }[method];
    }
    return out;
  }

  /** The browser login: `onRedirect(url)` shows it; without one the tenant needs `credlock login`. */
  async redirectToAuthorization(url) {
    if (!this.#opts.onRedirect) throw new CredlockMcpError('login-needed', { tenant: this.#tenant });
    await this.#opts.onRedirect(url);
  }

  async saveCodeVerifier(verifier) {
    await this.#setAttachment(ATTACHMENTS.verifier, verifier);
  }

  async codeVerifier() {
    const v = await this.#attachment(ATTACHMENTS.verifier);
    if (v == null) throw new CredlockMcpError('no-code-verifier', { tenant: this.#tenant });
    return v;
  }

  async saveDiscoveryState(state) {
    await this.#setAttachment(ATTACHMENTS.discovery, JSON.stringify(state));
    this.#issuerFor = undefined;
  }

  async discoveryState() {
    return parseJson(await this.#attachment(ATTACHMENTS.discovery));
  }

  /**
   * What the SDK asks to forget. `tokens` deletes nothing: the tokens this provider last
   * served are no longer served by it while they are the stored ones; newer tokens (another
   * process's refresh, a new login) are served. A refresh token the server rejected is
   * recorded by credlock itself for every process. `client`, `verifier` and `discovery`
   * remove their attachments; `all` does all four.
   */
  async invalidateCredentials(scope) {
    if (scope === 'tokens' || scope === 'all') this.#hiddenSha256 = this.#servedSha256;
    if (scope === 'client' || scope === 'all') await this.#setAttachment(ATTACHMENTS.client, null);
    if (scope === 'verifier' || scope === 'all') await this.#setAttachment(ATTACHMENTS.verifier, null);
    if (scope === 'discovery' || scope === 'all') await this.#setAttachment(ATTACHMENTS.discovery, null);
    this.#issuerFor = undefined;
  }

  /**
   * The transport's fetch. A token request presenting a handle never reaches the network:
   * it is answered from `store.refresh`. Every other request goes out; a 401 reply to one
   * that carried a bearer token records that token as refused.
   */
  async #fetch(base, input, init) {
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    if (method === 'POST') {
      const form = formOf(init?.body);
      // The SDK's own login: the resource its code exchange names is the one every refresh
      // must name too (a server may otherwise issue a token for no audience).
      if (form?.get('grant_type') === 'authorization_code') this.#loginResource = form.get('resource') ?? undefined;
      const presented = form?.get('grant_type') === 'refresh_token' ? form.get('refresh_token') : null;
      // Nothing that looks like a handle goes out: it is no refresh token anywhere else.
      if (presented?.startsWith(HANDLE_PREFIX)) {
        const handle = parseHandle(presented);
        return handle ? this.#answerRefresh(handle) : errorReply(new CredlockMcpError('malformed-handle'));
      }
    }
    const bearer = bearerOf(input, init);
    const reply = await base(input, init);
    if (reply.status === 401 && bearer) this.#refusedSha256 = sha256Hex(bearer);
    return reply;
  }

  async #answerRefresh(handle) {
    if (handle.tenant !== this.#tenant) {
      return errorReply(new CredlockMcpError('foreign-handle', { tenant: this.#tenant, handleTenant: handle.tenant }));
    }
    // The token the MCP server refused, else (a refresh the application asked for) the one
    // the handle names: credlock refreshes only if the store still holds it.
    const rejectedSha256 = this.#refusedSha256 ?? handle.sha256;
    let info;
    try {
      info = await this.#store.refreshAsync(this.#tenant, { rejectedSha256 });
    } catch (e) {
      return errorReply(e);
    }
    const sha = sha256Hex(info.token);
    this.#servedSha256 = sha;
    const { issuer: _, ...body } = this.#oauthTokens(info, sha);
    return jsonReply(200, body);
  }
}
