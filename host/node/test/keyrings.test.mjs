// Key slots in real OS keyrings, from Node: gnome-keyring's Secret Service on a private D-Bus
// session bus (started here, as host/tests/keyrings.rs does) and the kernel's persistent
// keyring (keyutils). Each store operation runs in a fresh Node process, so no key cached in
// a process can stand in for the keyring. scripts/setup.sh installs dbus, gnome-keyring,
// libsecret-tools and keyutils; without them these tests fail rather than skip.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Store } from '../src/index.js';
import { cli, runNode, tmpStore } from './helpers.mjs';

const TOKEN = { access_token: 'at-secret-1', expires_in: 3600 };
const FAST = { CREDLOCK_KEYRING_TIMEOUT: '20' };

function need(tool) {
  assert.equal(spawnSync('sh', ['-c', `command -v ${tool}`]).status, 0,
    `${tool} is not installed: run scripts/setup.sh (gnome-keyring, dbus, keyutils, libsecret-tools)`);
}

/** One Store call in a fresh Node process: the value, or { err: { code, kind, detail, message } }. */
async function call(dir, env, method, ...args) {
  const r = await runNode('store-call.mjs', [dir, method, ...args.map((a) => JSON.stringify(a))], { ...FAST, ...env });
  assert.ok(r.stdout, `no output: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
async function ok(dir, env, method, ...args) {
  const r = await call(dir, env, method, ...args);
  assert.ok('ok' in r, `${method}: ${JSON.stringify(r.err)}`);
  return r.ok;
}
const kinds = async (dir, env) => (await ok(dir, env, 'slots')).map((s) => s.kind);

/** A private session bus with gnome-keyring's Secret Service, unlocked, in a fresh HOME. */
class SecretService {
  static async start() {
    for (const t of ['dbus-daemon', 'dbus-send', 'gnome-keyring-daemon', 'secret-tool']) need(t);
    const ss = new SecretService();
    ss.home = fs.mkdtempSync(path.join(os.tmpdir(), 'credlock-ss-'));
    ss.run = path.join(ss.home, 'run');
    fs.mkdirSync(ss.run, { mode: 0o700 });
    ss.dbus = spawn('dbus-daemon', ['--session', '--nofork', '--print-address=1'], { stdio: ['ignore', 'pipe', 'ignore'] });
    ss.address = (await new Promise((resolve) => ss.dbus.stdout.once('data', resolve))).toString().trim();
    assert.match(ss.address, /^unix:/);
    ss.keyring = spawn('gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], {
      env: { ...process.env, ...ss.toolEnv() }, stdio: ['pipe', 'ignore', 'ignore'],
    });
    ss.keyring.stdin.end('test-login-password');
    const deadline = Date.now() + 20000;
    while (!ss.ready()) {
      assert.ok(Date.now() < deadline, 'the Secret Service did not appear on the bus');
      await new Promise((r) => setTimeout(r, 50));
    }
    return ss;
  }

  toolEnv() {
    return { DBUS_SESSION_BUS_ADDRESS: this.address, HOME: this.home, XDG_RUNTIME_DIR: this.run };
  }

  tool(cmd, args) {
    return spawnSync(cmd, args, { env: { ...process.env, ...this.toolEnv() }, encoding: 'utf8' });
  }

  ready() {
    const r = this.tool('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus',
      'org.freedesktop.DBus.NameHasOwner', 'string:org.freedesktop.secrets']);
    return r.stdout.includes('boolean true');
  }

  /** The environment for credlock processes on this bus (their HOME stays the real one). */
  get env() {
    return { DBUS_SESSION_BUS_ADDRESS: this.address };
  }

  entries() {
    const r = this.tool('secret-tool', ['search', '--all', 'service', 'credlock']);
    return `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.startsWith('attribute.service = credlock')).length;
  }

  /** What a reboot or a wiped keyring leaves: no credlock entries. */
  wipe() {
    assert.equal(this.tool('secret-tool', ['clear', 'service', 'credlock']).status, 0);
    assert.equal(this.entries(), 0);
  }

  stop() {
    this.keyring?.kill();
    this.dbus?.kill();
    fs.rmSync(this.home, { recursive: true, force: true });
  }
}

describe('Secret Service (gnome-keyring on a private bus)', () => {
  let ss;
  before(async () => {
    ss = await SecretService.start();
  });
  after(() => ss?.stop());

  test('a store opened by its keyring slot alone; a wiped keyring is keyring-entry-missing naming the other slot', async () => {
    const dir = tmpStore('ss');
    const env = { ...ss.env, CREDLOCK_KEYRING: 'secret-service' };
    assert.deepEqual(await ok(dir, env, 'put', 'acme', TOKEN), { revision: 1, generation: 1 });
    assert.deepEqual(await kinds(dir, ss.env), ['keyring']);
    assert.ok(!fs.existsSync(path.join(dir, 'key')), 'a keyring store gets no key file beside it');
    assert.equal(ss.entries(), 1);
    // Another process, no options at all: the keyring slot alone opens it.
    assert.equal(await ok(dir, ss.env, 'token', 'acme'), 'at-secret-1');
    // The Rust CLI opens it the same way.
    const r = cli(['token', 'acme'], { store: dir, env: ss.env });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'at-secret-1');
    // A second way in, then the keyring is wiped (as after a new machine).
    const slots = await ok(dir, ss.env, 'addSlot', 'passphrase', { passphrase: 'correct horse' });
    assert.deepEqual(slots.map((s) => [s.kind, s.durable]), [['keyring', true], ['passphrase', true]]);
    assert.match(slots[0].describe, /^secret-service entry credlock\/[0-9a-f]{32}$/);
    ss.wipe();
    const before = fs.readFileSync(path.join(dir, 'credentials.sealed'));
    const { err } = await call(dir, ss.env, 'token', 'acme');
    assert.deepEqual([err.code, err.kind, err.detail.backend, err.detail.slotKinds], ['key', 'keyring-entry-missing', 'secret-service', ['passphrase']]);
    assert.match(err.message, /secret-service keyring no longer holds this store's key/);
    assert.match(err.message, /other slots: passphrase/);
    // Never re-keyed implicitly: a put fails the same way and writes nothing.
    assert.equal((await call(dir, env, 'put', 'acme', { access_token: 'replacement' })).err.kind, 'keyring-entry-missing');
    assert.ok(fs.readFileSync(path.join(dir, 'credentials.sealed')).equals(before));
    assert.equal(ss.entries(), 0, 'no key was minted');
    // The passphrase opens it; a new keyring slot replaces the dead one.
    const pw = { ...ss.env, CREDLOCK_PASSPHRASE: 'correct horse' };
    assert.equal(await ok(dir, pw, 'token', 'acme'), 'at-secret-1');
    assert.deepEqual((await ok(dir, { ...pw, CREDLOCK_KEYRING: 'secret-service' }, 'addSlot', 'keyring')).map((s) => s.kind), ['keyring', 'passphrase', 'keyring']);
    await ok(dir, pw, 'removeSlot', 0);
    assert.equal(await ok(dir, ss.env, 'token', 'acme'), 'at-secret-1', 'the new keyring slot opens it without the passphrase');
  });

  test('in this process: the keyring option, and the keyring cached once per Store', () => {
    const saved = process.env.DBUS_SESSION_BUS_ADDRESS;
    process.env.DBUS_SESSION_BUS_ADDRESS = ss.address;
    try {
      const dir = tmpStore('ss-in');
      const s = Store.open(dir, { keyring: 'secret-service', keyringTimeout: 20 });
      s.put('a', TOKEN);
      assert.deepEqual(s.info().slotKinds, ['keyring']);
      assert.equal(Store.open(dir).token('a'), 'at-secret-1');
      assert.throws(() => Store.open(dir, { keyring: 'gnome' }), (e) => e.code === 'invalid-options' && /unknown keyring/.test(e.message));
    } finally {
      if (saved === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS;
      else process.env.DBUS_SESSION_BUS_ADDRESS = saved;
    }
  });
});

/** Remove a kernel keyring entry by id (never the whole keyring: others share it). */
function kernelForget(entry) {
  const r = spawnSync('keyctl', ['session', '-', 'sh', '-c',
    `P=$(keyctl get_persistent @s) && K=$(keyctl search "$P" user 'keyring:${entry}@credlock') && keyctl invalidate "$K"`], { encoding: 'utf8' });
  return r.status === 0;
}
const entryOf = (slot) => slot.describe.split('/')[1].split(' ')[0];

describe('the kernel keyring (keyutils)', () => {
  const made = [];
  after(() => {
    for (const e of made) kernelForget(e);
  });

  test('volatile: never alone unless allowed; opened by it alone; forgotten is keyring-entry-missing', async () => {
    need('keyctl');
    const dir = tmpStore('kernel');
    const env = { CREDLOCK_KEYRING: 'keyutils' };
    const refused = await call(dir, env, 'put', 'acme', TOKEN);
    assert.deepEqual([refused.err.code, refused.err.kind], ['key', 'slot-unavailable'], JSON.stringify(refused));
    assert.match(refused.err.message, /lose the store at the next reboot/);
    assert.ok(!fs.existsSync(path.join(dir, 'credentials.sealed')));
    const pw = { ...env, CREDLOCK_PASSPHRASE: 'pw' };
    await ok(dir, pw, 'put', 'acme', TOKEN);
    let slots = await ok(dir, pw, 'slots');
    assert.deepEqual(slots.map((s) => [s.kind, s.durable]), [['passphrase', true], ['kernel-keyring', false]]);
    assert.match(slots[1].describe, /^keyutils entry credlock\/[0-9a-f]{32} \(volatile: lost at reboot\)$/);
    made.push(entryOf(slots[1]));
    // Another process opens it through the kernel keyring alone.
    assert.equal(await ok(dir, {}, 'token', 'acme'), 'at-secret-1');
    // The durable slot cannot go while only the volatile one would remain.
    const { err } = await call(dir, pw, 'removeSlot', 0);
    assert.deepEqual([err.code, err.kind, err.detail.slotKinds], ['slot-change', 'only-volatile-left', ['kernel-keyring']]);
    // rekey re-makes both slots (a new kernel keyring entry).
    const info = await ok(dir, pw, 'rekey');
    assert.deepEqual(info.slotKinds, ['passphrase', 'kernel-keyring']);
    slots = await ok(dir, pw, 'slots');
    made.push(entryOf(slots[1]));
    assert.equal(await ok(dir, {}, 'token', 'acme'), 'at-secret-1');
    // After a "reboot": the passphrase still opens it, and the error says so.
    assert.ok(kernelForget(entryOf(slots[1])));
    const gone = await call(dir, {}, 'token', 'acme');
    assert.deepEqual([gone.err.code, gone.err.kind, gone.err.detail.backend, gone.err.detail.slotKinds], ['key', 'keyring-entry-missing', 'keyutils', ['passphrase']]);
    assert.match(gone.err.message, /keyutils keyring no longer holds/);
    assert.match(gone.err.message, /other slots: passphrase/);
    assert.equal(await ok(dir, { CREDLOCK_PASSPHRASE: 'pw' }, 'token', 'acme'), 'at-secret-1');
    // Volatile-only only when asked explicitly.
    const allow = { ...pw, CREDLOCK_ALLOW_VOLATILE_ONLY: '1' };
    slots = await ok(dir, allow, 'addSlot', 'kernel-keyring');
    made.push(entryOf(slots[2]));
    await ok(dir, allow, 'removeSlot', 1);
    const s = Store.open(dir, { passphrase: 'pw' });
    assert.deepEqual(s.removeSlot(0, { allowVolatileOnly: true }).map((x) => x.kind), ['kernel-keyring']);
    assert.equal(await ok(dir, {}, 'token', 'acme'), 'at-secret-1');
  });
});
