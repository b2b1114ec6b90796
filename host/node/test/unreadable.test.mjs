// A store that cannot be read is never modified, by any operation (maintenance included), and
// each kind of damage gets its specific error (the Rust CLI agrees: exit code 6).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Store } from '../src/index.js';
import { FAST_KDF, cli, runNode, snapshot, tmpStore } from './helpers.mjs';

const tok = (at) => ({ access_token: at, expires_in: 3600, refresh_token: 'rt', token_endpoint: 'http://127.0.0.1:9/token', client_id: 'c' });

/**
 * Every operation, in a fresh process (so that no unwrapped key is cached): each must fail
 * with `expect`, and the files in `before` must be exactly as they were.
 */
async function assertUntouched(dir, before, opts, expect, label) {
  const r = await runNode('every-op.mjs', [dir, JSON.stringify(opts)]);
  const results = JSON.parse(r.stdout);
  assert.equal(results.length, 14);
  for (const x of results) {
    assert.equal(x.code, expect.code, `${label}: ${x.op}: ${x.message ?? 'succeeded'}`);
    if (expect.kind) assert.equal(x.kind, expect.kind, `${label}: ${x.op}`);
    assert.ok(!/secret-/.test(x.message), `${label}: no token in the message`);
  }
  for (const [f, snap] of Object.entries(before)) {
    assert.deepEqual(snapshot(path.join(dir, f)), snap, `${label}: ${f} was modified`);
  }
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.')), [], `${label}: temporary files left`);
}

function makeStore(opts) {
  const dir = tmpStore('unreadable');
  const s = Store.open(dir, opts);
  s.put('a', tok('secret-one'));
  s.put('a', tok('secret-two'));
  return dir;
}

const damage = {
  'a flipped body byte': { mutate: (b) => { b[b.length - 1] ^= 1; }, code: 'corrupt' },
  'a flipped nonce byte': { mutate: (b) => { b[b.readUInt16BE(10) - 1] ^= 1; }, code: 'corrupt' },
  // Byte 45 is inside the key-file slot's key id: no key file matches it any more. The
  // backup opens with the same keys under the same data key, so it reads as a damaged
  // header (corrupt, with `recover` as the way out), not as a wrong key file.
  'a flipped slot byte': { mutate: (b) => { b[45] ^= 1; }, code: 'corrupt' },
  'a flipped magic byte': { mutate: (b) => { b[0] ^= 1; }, code: 'not-a-store' },
  'an unknown format version': { mutate: (b) => { b.writeUInt16BE(2, 8); }, code: 'unsupported-version' },
  'a truncated header': { mutate: (b) => b.subarray(0, 20), code: 'corrupt' },
  'an empty file': { mutate: () => Buffer.alloc(0), code: 'not-a-store' },
};

describe('an unreadable store is never modified', () => {
  for (const [label, { mutate, code }] of Object.entries(damage)) {
    test(label, async () => {
      const dir = makeStore();
      const f = path.join(dir, 'credentials.sealed');
      const b = Buffer.from(fs.readFileSync(f));
      fs.writeFileSync(f, mutate(b) ?? b);
      const before = { 'credentials.sealed': snapshot(f), 'credentials.sealed.bak': snapshot(path.join(dir, 'credentials.sealed.bak')) };
      await assertUntouched(dir, before, {}, { code }, label);
      const r = cli(['put', 'c'], { store: dir, input: JSON.stringify(tok('rust')) });
      assert.equal(r.status, 6, `the Rust CLI agrees: ${r.stderr}`);
      assert.deepEqual(snapshot(f), before['credentials.sealed']);
    });
  }

  test('a wrong, garbled or missing key file', async () => {
    const dir = makeStore();
    const key = path.join(dir, 'key');
    const files = ['credentials.sealed', 'credentials.sealed.bak'];
    const snap = () => Object.fromEntries(files.map((f) => [f, snapshot(path.join(dir, f))]));
    const good = fs.readFileSync(key);

    // Another valid key file (from another store).
    const other = makeStore();
    fs.copyFileSync(path.join(other, 'key'), key);
    let before = snap();
    await assertUntouched(dir, before, {}, { code: 'key', kind: 'wrong-key-file' }, 'wrong key file');

    fs.writeFileSync(key, 'credlock-key-file-v1 not-hex\n');
    await assertUntouched(dir, before, {}, { code: 'key', kind: 'wrong-key-file' }, 'garbled key file');

    fs.unlinkSync(key);
    await assertUntouched(dir, before, {}, { code: 'key', kind: 'no-matching-slot' }, 'missing key file');
    assert.ok(!fs.existsSync(key), 'no key is ever created for an existing store');

    fs.symlinkSync(path.join(other, 'key'), key);
    await assertUntouched(dir, before, {}, { code: 'key', kind: 'io' }, 'symlinked key file');
    fs.unlinkSync(key);

    fs.writeFileSync(key, good, { mode: 0o600 });
    assert.equal(Store.open(dir).token('a'), 'secret-two', 'the right key opens it, unchanged');
  });

  test('a wrong or missing passphrase', async () => {
    const dir = makeStore({ passphrase: 'right', kdf: FAST_KDF });
    const f = path.join(dir, 'credentials.sealed');
    const before = { 'credentials.sealed': snapshot(f) };
    await assertUntouched(dir, before, { passphrase: 'wrong' }, { code: 'key', kind: 'wrong-passphrase' }, 'wrong passphrase');
    await assertUntouched(dir, before, {}, { code: 'key', kind: 'no-matching-slot' }, 'no passphrase');
    assert.ok(!fs.existsSync(path.join(dir, 'key')), 'no key file appears');
    assert.equal(Store.open(dir, { passphrase: 'right' }).token('a'), 'secret-two');
  });

  test('a symlink at the store path is refused, never followed', async () => {
    const dir = makeStore();
    const f = path.join(dir, 'credentials.sealed');
    const elsewhere = path.join(dir, 'elsewhere');
    fs.renameSync(f, elsewhere);
    fs.symlinkSync(elsewhere, f);
    const before = { elsewhere: snapshot(elsewhere) };
    await assertUntouched(dir, before, {}, { code: 'io', kind: 'io' }, 'symlinked store');
    assert.ok(fs.lstatSync(f).isSymbolicLink());
  });
});
