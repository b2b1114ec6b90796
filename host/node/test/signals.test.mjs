// V8's WebAssembly traps and the addon's signal use coexist in one Node process. V8 turns an
// out-of-bounds wasm access into a trap with a SIGSEGV handler; wasmtime is configured with
// signals_based_traps(false) so it installs no trap handler, and the lock wait's wake-up
// signal (SIGRTMIN+6) is used only if nothing else claimed it. Each order is checked in a
// fresh process: V8 traps first, then credlock (including a lock timeout, sync and async),
// then V8 traps again, then credlock again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fixtures, startChild, tmpStore } from './helpers.mjs';

const index = JSON.stringify(path.resolve(fixtures, '../../src/index.js'));

// (module (memory 1)
//   (func (export "unreachable") unreachable)
//   (func (export "oob") (result i32) (i32.load (i32.const 0x7fffffff))))
const WASM = '0061736d010000000108026000006000017f030302000105030100010715020b756e726561636861626c650000036f6f6200010a11020300000b0b0041ffffffff072802000b';

const script = (dir, order) => `
  import { spawn } from 'node:child_process';
  import assert from 'node:assert/strict';
  const bytes = Buffer.from(${JSON.stringify(WASM)}.replace(/\\s/g, ''), 'hex');
  const out = [];
  function v8Traps(label) {
    const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
    for (const [name, re] of [['unreachable', /unreachable/], ['oob', /out of bounds/]]) {
      try { exports[name](); out.push(label + ' ' + name + ': no trap'); }
      catch (e) { out.push(label + ' ' + name + ': ' + (e instanceof WebAssembly.RuntimeError && re.test(e.message) ? 'trapped' : 'WRONG ' + e)); }
    }
  }
  async function credlock(label) {
    const { Store } = await import(${index});
    const dir = ${JSON.stringify(dir)} + '-' + label;
    const s = Store.open(dir, { lockTimeout: 0.3 });
    s.put('acme', { access_token: 'a-' + label, expires_in: 3600 });
    assert.equal(s.token('acme'), 'a-' + label);
    assert.equal(await s.tokenAsync('acme'), 'a-' + label);
    // Hold the store lock from another process; time out in Node, sync then async.
    const holder = spawn('flock', ['-x', dir + '/credentials.lock', '-c', 'echo locked; sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise((r) => holder.stdout.once('data', r));
    const t0 = Date.now();
    try { s.token('acme'); out.push(label + ' sync: no timeout'); } catch (e) { out.push(label + ' sync: ' + e.code); }
    const waited = Date.now() - t0;
    try { await s.tokenAsync('acme'); out.push(label + ' async: no timeout'); } catch (e) { out.push(label + ' async: ' + e.code); }
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('close', r));
    assert.ok(waited >= 290 && waited < 2000, 'waited ' + waited);
    s.put('acme', { access_token: 'b-' + label, expires_in: 3600 });
    out.push(label + ' after: ' + s.token('acme'));
  }
  ${order === 'v8-first' ? "v8Traps('before');" : ''}
  await credlock('one');
  v8Traps('between');
  await credlock('two');
  v8Traps('after');
  console.log(JSON.stringify(out));
`;

for (const order of ['v8-first', 'credlock-first']) {
  test(`V8 wasm traps and credlock in one process (${order})`, async () => {
    const c = await startChild(process.execPath, ['--input-type=module', '-e', script(tmpStore('signals'), order)]);
    const r = await c.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.signal, null);
    const out = JSON.parse(r.stdout);
    const expect = [
      ...(order === 'v8-first' ? ['before unreachable: trapped', 'before oob: trapped'] : []),
      'one sync: lock-timeout', 'one async: lock-timeout', 'one after: b-one',
      'between unreachable: trapped', 'between oob: trapped',
      'two sync: lock-timeout', 'two async: lock-timeout', 'two after: b-two',
      'after unreachable: trapped', 'after oob: trapped',
    ];
    assert.deepEqual(out, expect);
  });
}
