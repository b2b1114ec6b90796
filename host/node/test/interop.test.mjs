// Node and the Rust CLI share one store: each reads what the other wrote, with a key file
// and with a passphrase, in both directions.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Store } from '../src/index.js';
import { FAST_KDF, cli, tmpStore } from './helpers.mjs';

const tok = (at) => JSON.stringify({ access_token: at, token_type: 'Bearer', expires_in: 3600, refresh_token: `r-${at}`, scope: 'api' });

function rustList(store, env) {
  const r = cli(['list', '--json'], { store, env });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

describe('interop with the Rust CLI', () => {
  test('key file: Rust writes, Node reads and writes, Rust reads', () => {
    const dir = tmpStore();
    assert.equal(cli(['put', 'rust'], { store: dir, input: tok('from-rust') }).status, 0);
    const s = Store.open(dir);
    assert.equal(s.token('rust'), 'from-rust');
    assert.deepEqual(s.info().slotKinds, ['key-file']);
    s.put('node', tok('from-node'));
    s.put('rust', tok('from-node-2'));
    const r = cli(['token', 'node'], { store: dir });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'from-node');
    assert.equal(cli(['token', 'rust'], { store: dir }).stdout.trim(), 'from-node-2');
    const rl = rustList(dir);
    const nl = s.list();
    assert.deepEqual(rl.map((t) => [t.tenant, t.revision, t.has_refresh_token, t.scope]), nl.map((t) => [t.tenant, t.revision, t.hasRefreshToken, t.scope]));
    assert.deepEqual(rl.map((t) => t.expires_at_ms), nl.map((t) => t.expiresAtMs));
  });

  test('key file: Node creates the store and key, Rust reads and writes, Node reads', () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    s.put('node', tok('n1'));
    assert.match(fs.readFileSync(path.join(dir, 'key'), 'utf8'), /^credlock-key-file-v1 [0-9a-f]{32} [0-9a-f]{64}\n$/);
    assert.equal(cli(['token', 'node'], { store: dir }).stdout.trim(), 'n1');
    assert.equal(cli(['put', 'rust'], { store: dir, input: tok('r1') }).status, 0);
    assert.equal(cli(['delete', 'node'], { store: dir }).status, 0);
    assert.equal(s.token('rust'), 'r1');
    assert.throws(() => s.token('node'), (e) => e.code === 'not-found');
    // Two puts, and a delete: two writes, so that the backup no longer holds the tenant.
    assert.equal(s.info().generation, 4);
  });

  test('explicit key file elsewhere (CREDLOCK_KEY_FILE / keyFile)', () => {
    const dir = tmpStore();
    const kdir = tmpStore('keys');
    fs.mkdirSync(kdir);
    const keyFile = path.join(kdir, 'my.key');
    Store.open(dir, { keyFile }).put('a', tok('a1'));
    assert.ok(!fs.existsSync(path.join(dir, 'key')));
    assert.equal(cli(['token', 'a'], { store: dir, env: { CREDLOCK_KEY_FILE: keyFile } }).stdout.trim(), 'a1');
    assert.equal(cli(['token', 'a'], { store: dir }).status, 6, 'without it the store cannot be opened');
  });

  test('passphrase: Rust creates, Node opens; Node creates, Rust opens; wrong ones refused alike', () => {
    const a = tmpStore();
    assert.equal(cli(['put', 'rust'], { store: a, env: { CREDLOCK_PASSPHRASE: 'correct horse' }, input: tok('pw-rust') }).status, 0);
    assert.ok(!fs.existsSync(path.join(a, 'key')), 'a passphrase store gets no key file');
    const s = Store.open(a, { passphrase: 'correct horse' });
    assert.equal(s.token('rust'), 'pw-rust');
    assert.deepEqual(s.info().slotKinds, ['passphrase']);
    s.put('node', tok('pw-node'));
    assert.equal(cli(['token', 'node'], { store: a, env: { CREDLOCK_PASSPHRASE: 'correct horse' } }).stdout.trim(), 'pw-node');
    assert.throws(() => Store.open(a, { passphrase: 'wrong' }).token('rust'), (e) => e.code === 'key' && e.kind === 'wrong-passphrase');
    assert.throws(() => Store.open(a).token('rust'), (e) => e.code === 'key' && e.kind === 'no-matching-slot' && e.detail.slotKinds[0] === 'passphrase');

    // Node creates with (fast) argon2id parameters of its own: the slot records them, Rust honours them.
    const b = tmpStore();
    Store.open(b, { passphrase: 'pässwörd ✓', kdf: FAST_KDF }).put('node', tok('pw-node-b'));
    const r = cli(['token', 'node'], { store: b, env: { CREDLOCK_PASSPHRASE: 'pässwörd ✓' } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'pw-node-b');
    const wrong = cli(['token', 'node'], { store: b, env: { CREDLOCK_PASSPHRASE: 'passwort' } });
    assert.equal(wrong.status, 6);
    assert.match(wrong.stderr, /wrong passphrase/);
  });

  test('both slots: either source opens the store from either host', () => {
    const dir = tmpStore();
    const keyFile = path.join(dir, 'key');
    // An explicit key file plus a passphrase: a new store gets both slots.
    Store.open(dir, { passphrase: 'both', keyFile, kdf: FAST_KDF }).put('x', tok('x1'));
    assert.deepEqual(Store.open(dir, { passphrase: 'both' }).info().slotKinds, ['key-file', 'passphrase']);
    assert.equal(cli(['token', 'x'], { store: dir }).stdout.trim(), 'x1');
    fs.renameSync(keyFile, `${keyFile}.away`);
    assert.equal(cli(['token', 'x'], { store: dir, env: { CREDLOCK_PASSPHRASE: 'both' } }).stdout.trim(), 'x1');
    assert.equal(Store.open(dir, { passphrase: 'both' }).token('x'), 'x1');
  });
});

describe('maintenance across hosts', () => {
  // Default argon2id parameters here (the Rust CLI shows memory in whole MiB).
  const rustSlots = (store, env) => {
    const r = cli(['slot', 'list', '--json'], { store, env });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout).map((x) => [x.index, x.kind, x.description, x.durable]);
  };
  const nodeSlots = (s) => s.slots().map((x) => [x.index, x.kind, x.describe, x.durable]);

  test('Node rekeys a store Rust made; Rust reads it with either source', () => {
    const dir = tmpStore();
    const keyFile = path.join(tmpStore('keys'));
    const env = { CREDLOCK_PASSPHRASE: 'pw', CREDLOCK_KEY_FILE: keyFile };
    for (const n of ['a', 'b']) assert.equal(cli(['put', n], { store: dir, env, input: tok(`at-${n}`) }).status, 0);
    const s = Store.open(dir, { passphrase: 'pw', keyFile });
    const old = s.info().keyId;
    assert.deepEqual(nodeSlots(s), rustSlots(dir, env));
    const info = s.rekey();
    assert.notEqual(info.keyId, old);
    assert.ok(!fs.existsSync(path.join(dir, 'credentials.sealed.bak')));
    const onlyFile = { CREDLOCK_KEY_FILE: keyFile };
    const onlyPass = { CREDLOCK_PASSPHRASE: 'pw', CREDLOCK_KEY_FILE: path.join(dir, 'none') };
    for (const e of [onlyFile, onlyPass]) {
      for (const n of ['a', 'b']) {
        const r = cli(['token', n], { store: dir, env: e });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.trim(), `at-${n}`);
      }
    }
    assert.deepEqual(rustSlots(dir, onlyFile), nodeSlots(s));
  });

  test('Rust reads a slot Node added; Node reads a store Rust rekeyed', () => {
    const dir = tmpStore();
    assert.equal(cli(['put', 'acme'], { store: dir, input: tok('x') }).status, 0);
    const s = Store.open(dir);
    s.addSlot('passphrase', { passphrase: 'added by node' });
    assert.deepEqual(rustSlots(dir), nodeSlots(s));
    const env = { CREDLOCK_PASSPHRASE: 'added by node', CREDLOCK_KEY_FILE: path.join(dir, 'none') };
    assert.equal(cli(['token', 'acme'], { store: dir, env }).stdout.trim(), 'x');
    const r = cli(['rekey'], { store: dir, env: { CREDLOCK_PASSPHRASE: 'added by node' } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(Store.open(dir).token('acme'), 'x', 'the key file alone');
    assert.equal(Store.open(dir, { passphrase: 'added by node', keyFile: path.join(dir, 'none') }).token('acme'), 'x');
  });
});
