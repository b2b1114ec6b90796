// Types of credlock/mcp (src/mcp.js): the MCP TypeScript SDK's OAuthClientProvider over credlock.
import type { OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
import type { Store } from './index.js';

export { authFetch } from './fetch.js';

/** What every refresh handle (the stand-in for the refresh token the SDK keeps) starts with. */
export const HANDLE_PREFIX: 'credlock-mcp.v1:';
/** The attachments the provider keeps with the tenant. */
export const ATTACHMENTS: Readonly<{ client: string; verifier: string; discovery: string; issuer: string }>;
/** The redirect URL reported when none is given (the SDK refreshes only with one). */
export const DEFAULT_REDIRECT_URL: string;
/** The tenant and access-token hash a handle names; undefined for anything else. */
export function parseHandle(value: unknown): { tenant: string; sha256: string } | undefined;

export type CredlockMcpErrorCode = 'login-needed' | 'no-code-verifier' | 'foreign-handle' | 'malformed-handle' | 'handle-not-stored';

/** A failure of the adapter itself; store failures stay `CredlockError`. */
export class CredlockMcpError extends Error {
  readonly name: 'CredlockMcpError';
  readonly code: CredlockMcpErrorCode;
  readonly detail: Record<string, unknown>;
  /** What to do next. */
  readonly hint: string;
}

export interface CredlockOAuthProviderOptions {
  /** Registered with the authorization server by dynamic registration (default: a public client). */
  clientMetadata?: OAuthClientMetadata;
  /** The login's redirect URL (default `DEFAULT_REDIRECT_URL`). */
  redirectUrl?: string | URL;
  /** Shows the authorization URL of an interactive login; without it a login fails with `login-needed`. */
  onRedirect?: (authorizationUrl: URL) => void | Promise<void>;
  /** A pre-registered client, used when no registration is kept with the tenant. */
  clientInformation?: OAuthClientInformationMixed;
  /** Seconds `tokens()`' token stays valid (credlock's default: 60, capped at half the lifetime). */
  minValid?: number;
  /** The fetch everything but a handle's refresh goes through (default: the global fetch). */
  fetch?: typeof fetch;
  /** The OAuth `state` of a login. */
  state?: () => string | Promise<string>;
  /** The SDK's hook choosing a login's RFC 8707 `resource` (credlock's refresh sends none). */
  validateResourceURL?: (serverUrl: string | URL, resource?: string) => Promise<URL | undefined>;
}

/**
 * The SDK's `OAuthClientProvider` over one tenant of a credlock `Store`. Give the transport
 * both: `new StreamableHTTPClientTransport(url, { authProvider: p, fetch: p.fetch })`.
 */
export class CredlockOAuthProvider implements OAuthClientProvider {
  constructor(store: Store, tenant: string, options?: CredlockOAuthProviderOptions);
  readonly tenant: string;
  /** The transport's `fetch`: answers the SDK's refresh of a handle with `store.refresh`. */
  readonly fetch: typeof fetch;
  get redirectUrl(): string | URL;
  get clientMetadata(): OAuthClientMetadata;
  state?(): string | Promise<string>;
  validateResourceURL?(serverUrl: string | URL, resource?: string): Promise<URL | undefined>;
  clientInformation(): Promise<OAuthClientInformationMixed | undefined>;
  saveClientInformation(info: OAuthClientInformationMixed): Promise<void>;
  /** credlock's fresh token, a handle for its refresh token, `expires_in` and `expires_at` (Unix s). */
  tokens(): Promise<(OAuthTokens & { expires_at?: number }) | undefined>;
  saveTokens(tokens: OAuthTokens): Promise<void>;
  redirectToAuthorization(authorizationUrl: URL): Promise<void>;
  saveCodeVerifier(codeVerifier: string): Promise<void>;
  codeVerifier(): Promise<string>;
  saveDiscoveryState(state: OAuthDiscoveryState): Promise<void>;
  discoveryState(): Promise<OAuthDiscoveryState | undefined>;
  /** `tokens` hides the tokens last served from this provider and deletes nothing. */
  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): Promise<void>;
}
