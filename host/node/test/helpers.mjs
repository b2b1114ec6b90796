// Shared by the tests: temporary stores, child processes, the Rust CLI.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const fixtures = path.join(here, 'fixtures');
export const repo = path.resolve(here, '..', '..', '..');
export const CLI = process.env.CREDLOCK_CLI ?? path.join(repo, 'target', 'debug', 'credlock');

/** Fast argon2id for stores the tests create with a passphrase (the slot records them). */
export const FAST_KDF = { memoryKiB: 64, iterations: 1, parallelism: 1 };

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'credlock-node-test-'));
process.on('exit', () => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;
/** A fresh directory path (not created) for a store. */
export function tmpStore(name = 'store') {
  return path.join(tmpRoot, `${name}-${++n}`);
}

/** The environment for a child with credlock variables cleared, then `extra`. */
export function childEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('CREDLOCK_')) delete env[k];
  return { ...env, ...extra };
}

/** Run the Rust CLI synchronously: { status, stdout, stderr }. */
export function cli(args, { store, env = {}, input } = {}) {
  const r = spawnSync(CLI, args, {
    env: childEnv({ ...(store ? { CREDLOCK_STORE: store } : {}), ...env }),
    input,
    encoding: 'utf8',
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Start a child; resolves with { child, done } once its stdout printed a line matching `ready`. */
export function startChild(cmd, args, { env = {}, ready, readyStderr, stdin } = {}) {
  const child = spawn(cmd, args, { env: childEnv(env), stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (stdin !== undefined) child.stdin.end(stdin);
  let out = '';
  let err = '';
  const done = new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err }));
  });
  const started = new Promise((resolve, reject) => {
    if (!ready && !readyStderr) resolve();
    child.stderr.on('data', (d) => {
      err += d;
      if (readyStderr && readyStderr.test(err)) resolve();
    });
    child.stdout.on('data', (d) => {
      out += d;
      if (ready && ready.test(out)) resolve();
    });
    child.on('close', (code) => reject(new Error(`child exited (${code}) before ready: ${err}`)));
  });
  return started.then(() => ({ child, done, output: () => out }));
}

/** Run a node fixture to completion: { code, stdout, stderr }. */
export function runNode(script, args = [], env = {}) {
  return startChild(process.execPath, [path.join(fixtures, script), ...args], { env }).then((c) => c.done);
}

/** The test server's clients and how each authenticates (tests/oauth-server/README.md). */
const CLIENTS = {
  'conf-basic': { client_secret: 'basic-secret', client_auth: 'basic' },
  'conf-post': { client_secret: 'post-secret', client_auth: 'post' },
  'public-app': { client_auth: 'none' },
};

/**
 * The real OAuth server (tests/oauth-server: oidc-provider with refresh-token rotation and
 * reuse detection) on 127.0.0.1, as the Rust and Go tests run it. Tokens, rotation, client
 * authentication and reuse detection are the provider's own; its test layer counts
 * presentations (`stats()`) and injects faults (`fault()`).
 */
export async function oauthServer({ accessTtlS = 3600 } = {}) {
  const dir = fs.mkdtempSync(path.join(path.dirname(tmpStore()), 'oauth-'));
  const portFile = path.join(dir, 'url');
  const r = spawnSync('bash', [path.join(repo, 'tests/oauth-server/start.sh'), portFile], {
    env: { ...process.env, ACCESS_TTL_SECONDS: String(accessTtlS) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (r.status !== 0) throw new Error('the OAuth test server did not start (needs node and npm ci: scripts/setup.sh)');
  const base = fs.readFileSync(portFile, 'utf8').trim();
  const post = async (p, body) => {
    const res = await fetch(`${base}${p}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const reply = await res.json();
    if (!res.ok) throw new Error(`${p}: ${res.status} ${JSON.stringify(reply)}`);
    return reply;
  };
  const server = {
    base,
    url: `${base}/token`,
    /** A `put` document for a new grant of `clientId`; `doc` adds or replaces fields. */
    async grant(clientId = 'conf-basic', doc = {}) {
      const t = await post('/test/grant', { client_id: clientId, account: 'alice', scope: 'openid offline_access api' });
      delete t.grant_id;
      return { ...t, token_endpoint: `${base}/token`, client_id: clientId, ...CLIENTS[clientId], ...doc };
    },
    /** As grant(), stored as already expired, so that the next token() refreshes it. */
    async expiredGrant(clientId = 'conf-basic', doc = {}) {
      const { expires_in: _, ...t } = await server.grant(clientId, doc);
      return { expires_at: 1, ...t };
    },
    /** The server's counters; read them with counter(), which fails on a missing one. */
    async stats() {
      return (await fetch(`${base}/test/stats`)).json();
    },
    /** The counter `name`: a number, or an error (never a silent 0 for a renamed counter). */
    async counter(name) {
      const v = (await server.stats())[name];
      if (typeof v !== 'number') throw new Error(`the server's stats have no number ${name}`);
      return v;
    },
    /** The next `count` refresh requests meet `mode` (tests/oauth-server/README.md). */
    async fault(mode, count = 1, extra = {}) {
      await post('/test/fault', { mode, count, ...extra });
    },
    async reset() {
      await post('/test/reset', {});
    },
    /** Revoke a refresh token (RFC 7009), as an administrator would. */
    async revoke(refreshToken, clientId = 'conf-basic') {
      const form = new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token', client_id: clientId });
      if (CLIENTS[clientId].client_secret) form.set('client_secret', CLIENTS[clientId].client_secret);
      const res = await fetch(`${base}/token/revocation`, { method: 'POST', body: form });
      if (res.status !== 200) throw new Error(`revocation: ${res.status}`);
    },
    /** Whether the protected resource accepts `accessToken`. */
    async resource(accessToken) {
      return (await fetch(`${base}/resource`, { headers: { Authorization: `Bearer ${accessToken}` } })).status === 200;
    },
    /** Stops the server start.sh started (stop.sh checks the pid is that server). */
    stop() {
      spawnSync('bash', [path.join(repo, 'tests/oauth-server/stop.sh'), `${portFile}.pid`]);
    },
  };
  return server;
}

/** Flip one bit of byte `at` (negative: from the end) of a file. */
export function flipByte(file, at) {
  const b = fs.readFileSync(file);
  const i = at < 0 ? b.length + at : at;
  b[i] ^= 0x01;
  fs.writeFileSync(file, b);
}

/** A snapshot of a file's bytes, inode and mtime, to prove it was not written. */
export function snapshot(file) {
  const st = fs.statSync(file);
  return { bytes: fs.readFileSync(file).toString('hex'), ino: st.ino, mtimeMs: st.mtimeMs };
}

/** Now, in fractional Unix milliseconds comparable across processes. */
export const nowMs = () => performance.timeOrigin + performance.now();
