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

/** The local OAuth test server (fixtures/oauth-server.mjs): { url, stats(), stop() }. */
export async function oauthServer() {
  const { child, output } = await startChild(process.execPath, [path.join(fixtures, 'oauth-server.mjs')], { ready: /\n/ });
  const { port } = JSON.parse(output().split('\n')[0]);
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    url: `${base}/token`,
    async stats() {
      return (await fetch(`${base}/stats`)).json();
    },
    async reset() {
      await fetch(`${base}/reset`, { method: 'POST' });
    },
    stop() {
      child.kill();
    },
  };
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
