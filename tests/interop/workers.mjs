// A Node worker for the cross-language tests: `write STORE NAME K` or `storm STORE SECONDS BASE_URL`.
import http from 'node:http';
// INTEROP_NODE_MODULE: another build of the package (tests/release: the published one,
// installed from its tarballs), as a path or file URL of its entry point.
const { Store } = await import(process.env.INTEROP_NODE_MODULE ?? '../../host/node/src/index.js');

const [mode, store, a, b] = process.argv.slice(2);
const s = Store.open(store, { lockTimeout: 120 });
if (mode === 'write') {
  for (let i = 0; i < Number(b); i++) {
    s.put(a, { access_token: `${a}-${i}` });
    s.put('shared', { access_token: `${a}-${i}` });
    s.list();
  }
  console.log(JSON.stringify({ ok: true }));
} else if (mode === 'storm') {
  const deadline = performance.now() + Number(a) * 1000;
  let calls = 0;
  let rejected = 0;
  let failed = 0;
  const call = (token) => new Promise((resolve, reject) => {
    http.get(`${b}/resource`, { headers: { Authorization: `Bearer ${token}` }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    }).on('error', reject);
  });
  while (performance.now() < deadline) {
    const token = s.token('acme', { minValid: 1 });
    if (!(await call(token))) {
      // The 401 path: refresh only if the stored token is still the refused one.
      rejected++;
      if (!(await call(s.refresh('acme', { rejected: token }).token))) failed++;
    }
    calls++;
  }
  console.log(JSON.stringify({ calls, rejected, failed }));
}
s.close();
