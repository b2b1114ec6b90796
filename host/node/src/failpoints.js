// Named points where a test can stop this process, to `kill -9` it at an exact step of a
// refresh or a write: host/src/failpoints.rs, the same variable and syntax, so one crash
// test drives either host.
//
// `CREDLOCK_FAILPOINTS` is a comma-separated list of `NAME[@HIT]=ACTION`: `HIT` is which
// hit of the point acts (default every one); `ACTION` is `pause` (print
// `credlock: failpoint NAME reached` to stderr, then block for a minute so the test can
// kill the process), `abort`, or (Node only) `throw`, which throws a plain Error from the
// import: a host bug, which the component turns into a trap. Unset, each point costs one
// branch. The points: `post:before`, `post:after`, `replace:before-rename`.
import fs from 'node:fs';

let points = null;

function load() {
  const map = new Map();
  const spec = process.env.CREDLOCK_FAILPOINTS;
  if (!spec) return map;
  for (const item of spec.split(',').filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq < 0) continue;
    const [name, hit] = item.slice(0, eq).split('@');
    const action = item.slice(eq + 1);
    if (!['pause', 'abort', 'throw'].includes(action)) continue;
    map.set(name, { hit: hit === undefined ? null : Number(hit), action, count: 0 });
  }
  return map;
}

/** Pass through point `name`. */
export function hit(name) {
  points ??= load();
  if (points.size === 0) return;
  const p = points.get(name);
  if (!p) return;
  p.count += 1;
  if (p.hit !== null && p.hit !== p.count) return;
  switch (p.action) {
    case 'abort':
      process.abort();
      break;
    case 'throw':
      throw new Error(`failpoint ${name}`);
    default:
      fs.writeSync(2, `credlock: failpoint ${name} reached\n`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  }
}
