// The worker thread of endpoint.js: for each request message, one POST, reported on the
// MessagePort; then it flips the request's shared flag the caller is waiting on.
// Never logs bodies or headers.
import { workerData } from 'node:worker_threads';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';

const MAX_REPLY_BYTES = 1024 * 1024;
const { port } = workerData;

const TLS_CODE = /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_OSSL)/;

/** Before a connection exists nothing was sent: safe to forget (endpoint.rs `transport_error`). */
function beforeConnect(e) {
  const code = e?.code ?? '';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') {
    return { tag: 'connect', val: 'host not found' };
  }
  if (code === 'ECONNREFUSED') return { tag: 'connect', val: 'connection refused' };
  if (TLS_CODE.test(code) || e?.library === 'SSL routines' || /\bTLS\b|\bSSL\b|certificate/i.test(e?.message ?? '')) {
    return { tag: 'connect', val: `TLS: ${e.message}` };
  }
  return { tag: 'connect', val: 'connection failed' };
}

/** Everything else happened with the request possibly on the wire. */
function afterConnect(e) {
  return { tag: 'interrupted', val: e?.message ?? String(e) };
}

function handle({ id, url, body, authorization, deadline, flag, proxy }) {
  let done = false;
  let timer = null;
  // Set once the connection (TCP for http, TLS for https) is up: from then on the request
  // may be on the wire, and a failure is `interrupted` or `timeout`, not `connect`.
  let connected = false;
  const sockets = [];

  function finish(result) {
    if (done) return;
    done = true;
    if (timer) clearTimeout(timer);
    try {
      port.postMessage({ id, ...result });
    } finally {
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      for (const s of sockets) s.destroy();
    }
  }

  function onResponse(res) {
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_REPLY_BYTES) {
      finish({ err: { tag: 'reply-too-large' } });
      return;
    }
    const chunks = [];
    let total = 0;
    res.on('data', (c) => {
      total += c.length;
      if (total > MAX_REPLY_BYTES) {
        finish({ err: { tag: 'reply-too-large' } });
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => {
      const ct = res.headers['content-type'];
      finish({ ok: { status: res.statusCode, contentType: ct === undefined ? undefined : String(ct), body: Buffer.concat(chunks, total) } });
    });
    res.on('error', (e) => finish({ err: afterConnect(e) }));
    res.on('close', () => {
      if (!res.complete) finish({ err: { tag: 'interrupted', val: 'the connection closed before the reply was complete' } });
    });
  }

  const u = new URL(url);
  const secure = u.protocol === 'https:';
  const host = u.hostname.replace(/^\[|\]$/g, '');

  /** The POST itself, on a fresh connection (or over `tunnel`, a CONNECT socket). */
  function send(tunnel) {
    const headers = {
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
      'User-Agent': 'credlock/0.1.0 (node)',
      'Content-Length': Buffer.byteLength(body),
    };
    if (authorization !== undefined && authorization !== null) headers.Authorization = authorization;
    // agent: false: a fresh connection, no keep-alive pool. Over a tunnel, no agent at all
    // (Node only honours createConnection without one).
    const options = tunnel
      ? { method: 'POST', headers, defaultPort: 443, createConnection: () => tls.connect({ socket: tunnel, servername: net.isIP(host) ? undefined : host }) }
      : { method: 'POST', headers, agent: false };
    const req = (secure ? https : http).request(u, options);
    req.on('socket', (s) => {
      sockets.push(s);
      s.once(secure ? 'secureConnect' : 'connect', () => {
        connected = true;
      });
    });
    req.on('error', (e) => finish({ err: connected ? afterConnect(e) : beforeConnect(e) }));
    req.on('response', onResponse);
    req.end(body);
  }

  try {
    timer = setTimeout(() => {
      finish({ err: connected ? { tag: 'timeout' } : { tag: 'connect', val: 'timed out connecting' } });
    }, Math.max(0, deadline - Date.now()));
    if (!proxy) {
      send(null);
      return;
    }
    // A CONNECT tunnel through the proxy, then TLS to the real host over it. Nothing of the
    // request is sent before the tunnel and the TLS handshake are up.
    const target = `${net.isIPv6(host) ? `[${host}]` : host}:${u.port || 443}`;
    const connect = http.request({ host: proxy.host, port: proxy.port, method: 'CONNECT', path: target, headers: { host: target }, agent: false });
    connect.on('socket', (s) => sockets.push(s));
    connect.on('error', (e) => finish({ err: beforeConnect(e) }));
    connect.on('connect', (res, socket) => {
      sockets.push(socket);
      if (res.statusCode !== 200) {
        finish({ err: { tag: 'connect', val: `the proxy refused the tunnel (HTTP ${res.statusCode})` } });
        return;
      }
      if (!done) send(socket);
    });
    connect.end();
  } catch (e) {
    // Node refuses to build the request (e.g. a header with a control character): nothing sent.
    finish({ err: connected ? afterConnect(e) : { tag: 'bad-url', val: 'the request could not be built' } });
  }
}

port.on('message', handle);
