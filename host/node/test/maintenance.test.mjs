// Key slots, rekey, recover, quarantine and import through the Node host.
//
// The failures these guard against: a slot change or a rekey that drops a way into the store
// (or leaves none), a refused change that still touches the file, a rekey that keeps the old
// key's backup around, a recovery that deletes the damaged file or re-presents a refresh token
// that may have been spent, a quarantine that replaces a file, and an import that removes a
// token file it did not fully import (or one that changed since it was read).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Store, CredlockError } from '../src/index.js';
import { FAST_KDF, startChild, tmpStore } from './helpers.mjs';

const FAR = 4102444800; // 2100-01-01: tokens that never expire during a test
const tok = (access, refresh) => ({ access_token: access, expires_at: FAR, ...(refresh ? { refresh_token: refresh } : {}) });

/** Every regular file of `dir` with a hash of its bytes: proof that nothing was written. */
function snapshotDir(dir) {
  const out = {};
  for (const f of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, f);
    if (fs.lstatSync(p).isFile()) out[f] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
  }
  return out;
}

/** The thrown CredlockError (asserting there is one). */
function caught(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CredlockError, String(e));
    return e;
  }
  assert.fail('expected a CredlockError');
}

/** A store with a key-file slot and a passphrase slot, three tenants, and a backup. */
function bothSlots(dir, keyFile, passphrase = 'right') {
  const s = Store.open(dir, { passphrase, keyFile, kdf: FAST_KDF });
  for (const n of ['a', 'b', 'c']) s.put(n, tok(`at-${n}`, `rt-${n}`));
  assert.deepEqual(s.info().slotKinds, ['key-file', 'passphrase']);
  s.close();
}

const keyFileId = (file) => fs.readFileSync(file, 'utf8').split(/\s+/)[1];

/** { h, keyId, slots } of a store file (FORMAT.md, version 1): the header, parsed. */
function header(raw) {
  const h = raw.readUInt16BE(10);
  const slots = [];
  let at = 29;
  for (let i = 0; i < raw[28]; i++) {
    const kind = raw.subarray(at + 1, at + 1 + raw[at]).toString('ascii');
    at += 1 + raw[at];
    const n = raw.readUInt16BE(at);
    slots.push({ kind, data: Buffer.from(raw.subarray(at + 2, at + 2 + n)) });
    at += 2 + n;
  }
  assert.equal(at, h - 12);
  return { h, keyId: Buffer.from(raw.subarray(12, 28)), slots };
}

function flipLastByte(dir) {
  const f = path.join(dir, 'credentials.sealed');
  const b = fs.readFileSync(f);
  b[b.length - 1] ^= 1;
  fs.writeFileSync(f, b);
  return b;
}

describe('key slots', () => {
  test('add a passphrase slot, then open with only the passphrase', () => {
    const dir = tmpStore();
    const s = Store.open(dir, { kdf: FAST_KDF });
    assert.deepEqual(s.slots(), [], 'an absent store has none');
    s.put('acme', tok('at-1'));
    const keyId = s.info().keyId;
    assert.deepEqual(s.slots(), [{ index: 0, kind: 'key-file', describe: `key file ${keyFileId(path.join(dir, 'key'))}`, durable: true }]);
    const slots = s.addSlot('passphrase', { passphrase: 'new pass' });
    assert.deepEqual(slots.map((x) => [x.index, x.kind, x.durable]), [[0, 'key-file', true], [1, 'passphrase', true]]);
    assert.equal(slots[1].describe, 'argon2id m=64 KiB t=1 p=1');
    assert.deepEqual(s.slots(), slots);
    assert.equal(s.info().keyId, keyId, 'the same data key, one more way to it');
    assert.ok(!JSON.stringify(slots).includes('new pass'));
    s.close();
    const nowhere = path.join(dir, 'no-such-key');
    assert.equal(Store.open(dir, { passphrase: 'new pass', keyFile: nowhere }).token('acme', { minValid: 0 }), 'at-1');
    const e = caught(() => Store.open(dir, { passphrase: 'not it', keyFile: nowhere }).list());
    assert.equal(e.kind, 'wrong-passphrase');
    assert.ok(!fs.existsSync(nowhere));
  });

  test('slots that cannot be made change nothing', () => {
    const dir = tmpStore();
    const s = Store.open(dir, { kdf: FAST_KDF });
    s.put('acme', tok('x'));
    const before = snapshotDir(dir);
    const cases = [
      [() => s.addSlot('key-file'), /^key-file: the store already has a slot for this key file$/],
      [() => s.addSlot('passphrase'), /^passphrase: no new passphrase was given$/],
      [() => s.addSlot('tpm2'), /^tpm2: unknown slot kind/],
    ];
    for (const [fn, detail] of cases) {
      const e = caught(fn);
      assert.deepEqual([e.code, e.kind, e.exitCode], ['key', 'slot-unavailable', 9], String(detail));
      assert.match(e.detail.detail, detail);
      assert.ok(e.message.includes(e.detail.detail) && e.hint, String(detail));
    }
    assert.equal(caught(() => s.addSlot('key-file', { passphrase: 'only for passphrase slots' })).code, 'invalid-options');
    assert.equal(caught(() => s.addSlot('passphrase', { passphrase: '' })).code, 'invalid-options');
    assert.deepEqual(snapshotDir(dir), before);
  });

  test('a key-file slot for a passphrase store', () => {
    const dir = tmpStore();
    const s = Store.open(dir, { passphrase: 'pw', kdf: FAST_KDF });
    s.put('acme', tok('x'));
    assert.ok(!fs.existsSync(path.join(dir, 'key')), 'a passphrase store gets no key file');
    // Asked for explicitly, the default key file is made (as `credlock slot add key-file`).
    let slots = s.addSlot('key-file');
    assert.deepEqual(slots.map((x) => x.kind), ['passphrase', 'key-file']);
    assert.equal(slots[1].describe, `key file ${keyFileId(path.join(dir, 'key'))}`);
    assert.equal(Store.open(dir).token('acme', { minValid: 0 }), 'x', 'the default key file alone opens it');
    s.removeSlot(1);
    fs.rmSync(path.join(dir, 'key'));
    const keyFile = path.join(tmpStore('keys'));
    slots = Store.open(dir, { passphrase: 'pw', keyFile, kdf: FAST_KDF }).addSlot('key-file');
    assert.deepEqual(slots.map((x) => x.kind), ['passphrase', 'key-file']);
    assert.equal(slots[1].describe, `key file ${keyFileId(keyFile)}`);
    assert.equal(Store.open(dir, { keyFile }).token('acme', { minValid: 0 }), 'x', 'the key file alone opens it');
  });

  test('remove-slot refusals, and a removal that takes the backup with it', () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    let e = caught(() => s.removeSlot(0));
    assert.deepEqual([e.code, e.kind, e.detail.index, e.exitCode], ['slot-change', 'no-such-slot', 0, 9]);
    s.put('acme', tok('x'));
    const before = snapshotDir(dir);
    e = caught(() => s.removeSlot(0));
    assert.equal(e.kind, 'last-slot');
    assert.match(e.message, /only key slot/);
    e = caught(() => s.removeSlot(7));
    assert.deepEqual([e.kind, e.detail.index], ['no-such-slot', 7]);
    assert.match(e.message, /no key slot 7/);
    for (const bad of [-1, 1.5, '0', 2 ** 32]) assert.equal(caught(() => s.removeSlot(bad)).code, 'invalid-options');
    assert.deepEqual(snapshotDir(dir), before);

    const both = tmpStore();
    const keyFile = path.join(both, 'k');
    bothSlots(both, keyFile);
    assert.ok(fs.existsSync(path.join(both, 'credentials.sealed.bak')));
    assert.deepEqual(Store.open(both, { passphrase: 'right', keyFile }).removeSlot(0).map((x) => x.kind), ['passphrase']);
    assert.ok(!fs.existsSync(path.join(both, 'credentials.sealed.bak')), 'the backup still held the removed slot');
    e = caught(() => Store.open(both, { keyFile }).list());
    assert.deepEqual([e.kind, e.detail.slotKinds], ['no-matching-slot', ['passphrase']]);
    assert.equal(Store.open(both, { passphrase: 'right', keyFile: path.join(both, 'none') }).token('a', { minValid: 0 }), 'at-a');
  });

});

describe('rekey', () => {
  test('a new key from the same sources; the old key file still opens; the backup is gone', () => {
    const dir = tmpStore();
    const keyFile = path.join(dir, 'k');
    bothSlots(dir, keyFile);
    const keyText = fs.readFileSync(keyFile, 'utf8');
    const s = Store.open(dir, { passphrase: 'right', keyFile, kdf: FAST_KDF });
    const old = s.info();
    const oldSlots = s.slots();
    const oldHeader = header(fs.readFileSync(path.join(dir, 'credentials.sealed'))).slots;
    const info = s.rekey();
    assert.notEqual(info.keyId, old.keyId);
    assert.match(info.keyId, /^[0-9a-f]{32}$/);
    assert.deepEqual([info.generation, info.tenants, info.slotKinds], [old.generation + 1, 3, old.slotKinds]);
    assert.deepEqual(s.slots(), oldSlots, 'the same key file id, the same argon2id parameters');
    const newHeader = header(fs.readFileSync(path.join(dir, 'credentials.sealed'))).slots;
    assert.ok(newHeader.every((x, i) => !x.data.equals(oldHeader[i].data)), 'new salt and nonces');
    assert.deepEqual(s.info(), info);
    assert.ok(!fs.existsSync(path.join(dir, 'credentials.sealed.bak')), 'the backup was sealed under the old key');
    assert.equal(fs.readFileSync(keyFile, 'utf8'), keyText);
    const byFile = Store.open(dir, { keyFile });
    assert.deepEqual(['a', 'b', 'c'].map((n) => byFile.token(n, { minValid: 0 })), ['at-a', 'at-b', 'at-c']);
    const byPass = Store.open(dir, { passphrase: 'right', keyFile: path.join(dir, 'none') });
    assert.equal(byPass.info().keyId, info.keyId);
  });

  test('a wrong passphrase, a missing or another source: nothing changes', () => {
    const dir = tmpStore();
    const keyFile = path.join(dir, 'k');
    bothSlots(dir, keyFile);
    const before = snapshotDir(dir);
    // The key file opens the store; the passphrase given would not open its slot.
    const wrong = Store.open(dir, { passphrase: 'wrong', keyFile, kdf: FAST_KDF });
    assert.equal(wrong.list().length, 3);
    let e = caught(() => wrong.rekey());
    assert.deepEqual([e.code, e.kind], ['key', 'wrong-passphrase']);
    e = caught(() => Store.open(dir, { keyFile }).rekey());
    assert.equal(e.kind, 'slot-unavailable');
    assert.match(e.detail.detail, /^passphrase: /);
    const otherKey = path.join(tmpStore('other'), 'key');
    Store.open(path.dirname(otherKey)).init();
    const other = Store.open(dir, { passphrase: 'right', keyFile: otherKey, kdf: FAST_KDF });
    assert.equal(other.list().length, 3);
    e = caught(() => other.rekey());
    assert.equal(e.kind, 'slot-unavailable');
    assert.ok(e.detail.detail.includes(keyFileId(keyFile)), e.detail.detail);
    assert.deepEqual(snapshotDir(dir), before);
  });
});

describe('recover and quarantine', () => {
  test('recover quarantines a corrupt store and restores the backup', () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    s.put('a', tok('at-a', 'rt-a'));
    s.put('b', tok('at-b', 'rt-b')); // the backup now holds only a
    const generation = s.info().generation;
    const damaged = flipLastByte(dir);
    assert.match(caught(() => s.list()).hint, /recover/);
    const r = s.recover();
    assert.match(r.quarantinedAs, /^credentials\.sealed\.corrupt-\d{13}$/);
    assert.ok(fs.readFileSync(path.join(dir, r.quarantinedAs)).equals(damaged), 'moved, never rewritten');
    assert.deepEqual([r.tenants, r.refreshUnknown], [1, ['a']]);
    assert.ok(r.generation > generation);
    const [a, ...rest] = s.list();
    assert.deepEqual([a.tenant, a.needsReauth, rest.length], ['a', true, 0], "a's refresh token may be spent: never presented silently");
    assert.equal(s.token('a', { minValid: 0 }), 'at-a');
    const before = snapshotDir(dir);
    const e = caught(() => s.recover());
    assert.deepEqual([e.code, e.kind, e.exitCode], ['recover', 'store-readable', 9]);
    assert.deepEqual(snapshotDir(dir), before);
  });

  test('force rolls back a readable store; no usable backup is refused', () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    s.put('a', tok('at-a', 'rt-a'));
    s.put('b', tok('at-b', 'rt-b'));
    s.put('a', tok('at-a2', 'rt-a'));
    const current = fs.readFileSync(path.join(dir, 'credentials.sealed'));
    const r = s.recover({ force: true });
    assert.ok(fs.readFileSync(path.join(dir, r.quarantinedAs)).equals(current));
    assert.deepEqual([r.tenants, r.refreshUnknown], [2, []], 'both refresh tokens are still current: none marked');
    assert.equal(s.token('a', { minValid: 0 }), 'at-a');

    const fresh = tmpStore();
    const f = Store.open(fresh);
    f.put('a', tok('x')); // the first write: no backup yet
    flipLastByte(fresh);
    let before = snapshotDir(fresh);
    assert.equal(caught(() => f.recover()).kind, 'no-backup');
    assert.deepEqual(snapshotDir(fresh), before);
    const two = tmpStore();
    const t = Store.open(two);
    t.put('a', tok('x'));
    t.put('b', tok('y'));
    flipLastByte(two);
    const bak = path.join(two, 'credentials.sealed.bak');
    fs.writeFileSync(bak, fs.readFileSync(bak).subarray(0, -1));
    before = snapshotDir(two);
    const e = caught(() => t.recover());
    assert.equal(e.kind, 'backup-unreadable');
    assert.match(e.detail.detail, /damaged/);
    assert.deepEqual(snapshotDir(two), before);
  });

  test('quarantine moves only an unreadable store', () => {
    const dir = tmpStore();
    const s = Store.open(dir);
    assert.equal(caught(() => s.quarantine()).code, 'io', 'nothing to move');
    s.put('old', tok('x'));
    assert.equal(caught(() => s.quarantine()).kind, 'store-readable');
    const damaged = flipLastByte(dir);
    const name = s.quarantine();
    assert.match(name, /^credentials\.sealed\.corrupt-\d{13}$/);
    assert.ok(fs.readFileSync(path.join(dir, name)).equals(damaged));
    assert.ok(!fs.existsSync(path.join(dir, 'credentials.sealed')));
    s.put('new', tok('y')); // a new store beside it, with the same key file
    assert.deepEqual(s.list().map((t) => t.tenant), ['new']);
    assert.ok(fs.readFileSync(path.join(dir, name)).equals(damaged));
  });

});

describe('import', () => {
  const agent = { type: 'oauth', access: 'at-agent', refresh: 'rt-agent', expires: FAR * 1000 + 123 };

  test('an agent auth.json with an API key: imported, and the source kept', () => {
    const dir = tmpStore();
    const src = `${dir}-auth.json`;
    fs.writeFileSync(src, JSON.stringify({ anthropic: agent, openai: { type: 'api', key: 'sk-secret-api-key' } }));
    const s = Store.open(dir);
    const r = s.importFile(src, { removeSource: true });
    assert.deepEqual([r.imported, r.skipped.map(([n]) => n)], [['anthropic'], ['openai']]);
    assert.ok(!JSON.stringify(r).includes('sk-secret'));
    assert.deepEqual([r.sourceRemoved, r.keptReason], [false, 'entries were skipped: openai']);
    assert.ok(fs.existsSync(src));
    const t = s.tokenInfo('anthropic', { minValid: 0 });
    assert.deepEqual([t.token, t.expiresAtMs], ['at-agent', FAR * 1000], 'expires: ms, floored to seconds');
    assert.ok(s.list()[0].hasRefreshToken);
    assert.equal(r.generation, s.info().generation);
  });

  test('the source is removed once durable; conflicts; a changed source or a symlink is kept', async () => {
    const dir = tmpStore();
    const src = `${dir}-tokens.json`;
    fs.writeFileSync(src, JSON.stringify({ anthropic: agent, acme: tok('at-acme') }));
    const s = Store.open(dir);
    let r = s.importFile(src, { removeSource: true });
    assert.deepEqual(r, { imported: ['acme', 'anthropic'], skipped: [], generation: r.generation, sourceRemoved: true });
    assert.ok(!fs.existsSync(src));

    const one = `${dir}-one.json`;
    fs.writeFileSync(one, JSON.stringify(tok('at-acme-2')));
    const before = snapshotDir(dir);
    const e = caught(() => s.importFile(one, { tenant: 'acme', removeSource: true }));
    assert.deepEqual([e.code, e.detail.tenants, e.exitCode], ['import-conflict', ['acme'], 9]);
    assert.ok(fs.existsSync(one));
    assert.deepEqual(snapshotDir(dir), before);
    r = s.importFile(one, { tenant: 'acme', replace: true, removeSource: true });
    assert.ok(r.sourceRemoved && !fs.existsSync(one));
    assert.equal(s.token('acme', { minValid: 0 }), 'at-acme-2');
    assert.equal(caught(() => s.importTokens(tok('x'))).code, 'invalid-token-response', 'a single response needs its tenant named');
    // The tools' files: detected, or named with `kind` (a file not of its kind names it).
    const claude = { claudeAiOauth: { accessToken: 'at-claude', expiresAt: FAR * 1000, scopes: ['user:inference'] } };
    assert.deepEqual(s.importTokens(claude, { tenant: 'claude' }).imported, ['claude']);
    assert.equal(s.tokenInfo('claude', { minValid: 0 }).expiresAtMs, FAR * 1000);
    const wrong = caught(() => s.importTokens(tok('x'), { tenant: 'x', kind: 'claude-code' }));
    assert.ok(wrong.code === 'invalid-token-response' && wrong.message.includes("not Claude Code's .credentials.json"), wrong.message);
    assert.equal(caught(() => s.importTokens(tok('x'), { tenant: 'x', kind: 'gcloud' })).code, 'invalid-options');
    assert.equal(caught(() => s.importFile(`${dir}-missing.json`)).code, 'invalid-token-response');
    const fifo = `${dir}-fifo.json`;
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    assert.equal(caught(() => s.importFile(fifo)).code, 'invalid-token-response', 'refused at once, never waited on');

    // The agent rotates its refresh token after our read: the newer file must survive.
    const auth = `${dir}-auth.json`;
    fs.writeFileSync(auth, JSON.stringify({ anthropic: agent }));
    const newer = JSON.stringify({ anthropic: { ...agent, refresh: 'rt-rotated-by-agent' } });
    // The import reads the file, then waits for the store lock (held by flock(1) here); the
    // agent rewrites the file meanwhile.
    const holder = await startChild('flock', ['-x', path.join(dir, 'credentials.lock'), '-c', 'echo locked; sleep 1'], { ready: /locked/ });
    const pending = s.importFileAsync(auth, { replace: true, removeSource: true });
    await new Promise((resolve) => setTimeout(resolve, 300));
    fs.writeFileSync(auth, newer);
    await holder.done;
    r = await pending;
    assert.deepEqual([r.imported, r.sourceRemoved], [['anthropic'], false]);
    assert.match(r.keptReason, /changed/);
    assert.equal(fs.readFileSync(auth, 'utf8'), newer);

    const link = `${dir}-link.json`;
    fs.symlinkSync(auth, link);
    r = s.importFile(link, { replace: true, removeSource: true });
    assert.ok(!r.sourceRemoved && fs.lstatSync(link).isSymbolicLink() && fs.existsSync(auth));
  });
});
