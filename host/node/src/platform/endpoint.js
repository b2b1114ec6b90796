// credlock:store/token-endpoint — one synchronous POST: host/src/endpoint.rs in JS.
//
// The WIT import is synchronous, and Node's HTTP client is not. So the request runs in a
// worker thread while this thread blocks in `Atomics.wait` on a SharedArrayBuffer with the
// call's deadline; the worker posts the reply on a MessagePort, then flips the flag and
// notifies; this thread takes the reply with `receiveMessageOnPort`. No event loop turn is
// needed on this side, and nothing else of the process runs meanwhile (the store call is
// synchronous anyway).
//
// Exactly one request per call: no retries and no redirects (http.request follows none),
// because a refresh token sent twice can revoke its whole grant. Plain http only to
// loopback unless the user allowed it. https to other hosts goes through an http://
// `https_proxy` (CONNECT) if the environment names one. Bodies are never logged.
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import net from 'node:net';
import { hit } from '../failpoints.js';

/** The largest reply read (the WIT's limit). */
export const MAX_REPLY_BYTES = 1024 * 1024;
/** How long past the deadline we wait for a worker that has not reported (a hung worker). */
const GRACE_MS = 500;
const WORKER_URL = new URL('./http-worker.js', import.meta.url);

const badUrl = (why) => ({ payload: { tag: 'bad-url', val: why } });

export function isLoopback(host) {
  const h = host.replace(/^\[/, '').replace(/\]$/, '');
  if (h.toLowerCase() === 'localhost') return true;
  const kind = net.isIP(h);
  if (kind === 4) return h.startsWith('127.');
  if (kind === 6) return /^(0{0,4}:){2,7}0{0,3}1$/.test(h) || h === '::1';
  return false;
}

/** The URL if acceptable (endpoint.rs `post`, before any I/O); throws `bad-url`. */
export function checkUrl(url, allowInsecureHttp) {
  let u;
  try {
    u = new URL(url);
  } catch {
    throw badUrl('not a valid URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw badUrl('only http and https URLs are accepted');
  }
  if (!u.hostname) throw badUrl('the URL has no host');
  if (u.protocol === 'http:' && !isLoopback(u.hostname) && !allowInsecureHttp) {
    throw badUrl('plain http to a non-loopback host would expose the refresh token; use https (or CREDLOCK_ALLOW_INSECURE_HTTP=1)');
  }
  return u;
}

// One worker per process, started on the first POST and unref'd (it never keeps the
// process alive). A call that got no reply by its deadline plus a grace period terminates
// it (cancelling whatever it was doing); the next call starts a new one.
let shared = null;

function channel() {
  if (shared) return shared;
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(WORKER_URL, {
    workerData: { port: port2 },
    transferList: [port2],
    // Not the embedding process's flags (--input-type, --require hooks, profilers...).
    execArgv: [],
    stdout: true,
    stderr: true,
  });
  const ch = { worker, port: port1, seq: 0 };
  // A failing worker reports through the port or not at all (then: timeout); its 'error'
  // event must not become an uncaught exception of the embedding process.
  worker.on('error', () => {
    if (shared === ch) shared = null;
  });
  worker.unref();
  port1.unref();
  shared = ch;
  return ch;
}

function dropChannel(ch) {
  if (shared === ch) shared = null;
  ch.port.close();
  ch.worker.terminate().catch(() => {});
}

/** Does NO_PROXY (or no_proxy) exempt `host`? Entries: `*`, `host`, `.domain`, `domain`. */
function bypassed(host) {
  const list = process.env.NO_PROXY ?? process.env.no_proxy ?? '';
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return list.split(',').map((e) => e.trim().toLowerCase()).filter(Boolean).some((e) => {
    if (e === '*') return true;
    const name = e.replace(/^\*?\./, '').replace(/:\d+$/, '');
    return h === name || h.endsWith(`.${name}`);
  });
}

/**
 * The proxy for `u` from the environment: `https_proxy` / `HTTPS_PROXY`, for https to
 * non-loopback hosts only (the Rust host never proxies loopback; the Python host does the
 * same), and only http:// proxies (a CONNECT tunnel). Read at each call.
 */
export function proxyFor(u) {
  if (u.protocol !== 'https:' || isLoopback(u.hostname) || bypassed(u.hostname)) return null;
  const spec = process.env.https_proxy ?? process.env.HTTPS_PROXY;
  if (!spec) return null;
  let p;
  try {
    p = new URL(spec.includes('://') ? spec : `http://${spec}`);
  } catch {
    return null;
  }
  if (p.protocol !== 'http:' || !p.hostname) return null;
  return { host: p.hostname.replace(/^\[|\]$/g, ''), port: Number(p.port || 8080) };
}

/** One POST, synchronously. Returns an `http-reply`; throws `{ payload: transport-error }`. */
export function post(request, policy = {}) {
  const proxy = proxyFor(checkUrl(request.url, !!policy.allowInsecureHttp));
  const timeoutMs = request.timeoutMs >>> 0;
  const deadline = Date.now() + timeoutMs;
  const flag = new Int32Array(new SharedArrayBuffer(4));
  let ch;
  try {
    ch = channel();
  } catch (e) {
    throw { payload: { tag: 'connect', val: `cannot start the HTTP worker: ${e?.message ?? e}` } };
  }
  const id = ++ch.seq;
  ch.port.postMessage({
    id,
    url: request.url,
    body: request.body,
    authorization: request.authorization,
    deadline,
    flag,
    proxy,
  });
  const hardDeadline = deadline + GRACE_MS;
  for (;;) {
    const left = hardDeadline - Date.now();
    if (left <= 0) break;
    Atomics.wait(flag, 0, 0, left);
    if (Atomics.load(flag, 0) !== 0) break;
  }
  let reply = null;
  for (let m = receiveMessageOnPort(ch.port); m; m = receiveMessageOnPort(ch.port)) {
    // Replies to earlier calls that gave up are dropped here.
    if (m.message.id === id) reply = m.message;
  }
  if (!reply) {
    // The worker never reported: the request may or may not have reached the server.
    dropChannel(ch);
    throw { payload: { tag: 'timeout' } };
  }
  if (reply.err) throw { payload: reply.err };
  const r = reply.ok;
  return {
    status: r.status,
    contentType: r.contentType,
    body: new Uint8Array(r.body.buffer, r.body.byteOffset, r.body.byteLength),
  };
}

/** The `token-endpoint` import. */
export function makeEndpoint(policy) {
  return {
    post(request) {
      hit('post:before');
      try {
        return post(request, policy);
      } finally {
        hit('post:after');
      }
    },
  };
}
