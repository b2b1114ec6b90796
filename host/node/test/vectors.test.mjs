// Runs every shared test vector (tests/vectors/*.json) through the Node host. The Rust and
// Python hosts run the same files (tests/vectors/README.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
// CREDLOCK_TEST_PACKAGE (a file URL of another build's entry point) and CREDLOCK_VECTORS: the
// published package run against the repository's vectors (tests/release/run.sh).
const { Store, CredlockError } = await import(process.env.CREDLOCK_TEST_PACKAGE ?? '../src/index.js');

const dir = process.env.CREDLOCK_VECTORS
  ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../tests/vectors');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

const decode = (v) => (v.startsWith('hex:') ? Buffer.from(v.slice(4), 'hex') : Buffer.from(v.slice(5), 'utf8'));
/**
 * Put a vector's `keyring` entries in place, as the Rust host's vectors test does: the kernel
 * keyring (keyutils) entry `keyring:<user>@credlock` in the per-user persistent keyring, with
 * `keyctl` in a session of its own. Returns a function that removes them by id.
 */
function installKeyringEntries(v, root) {
  const users = [];
  for (const e of v.keyring ?? []) {
    assert.equal(e.backend, 'keyutils', 'only kernel keyring entries can be installed here');
    const secret = path.join(root, `secret-${users.length}`);
    fs.writeFileSync(secret, decode(e.secret), { mode: 0o600 });
    const r = spawnSync('keyctl', ['session', '-', 'sh', '-c',
      `P=$(keyctl get_persistent @s) && keyctl padd user "keyring:${e.user}@credlock" "$P" < "${secret}"`], { encoding: 'utf8' });
    assert.equal(r.status, 0, `installing the vector's keyring entry (keyctl): ${r.stderr}`);
    fs.rmSync(secret);
    users.push(e.user);
  }
  return () => {
    for (const user of users) {
      spawnSync('keyctl', ['session', '-', 'sh', '-c',
        `P=$(keyctl get_persistent @s) && K=$(keyctl search "$P" user "keyring:${user}@credlock") && keyctl invalidate "$K"`], { stdio: 'ignore' });
    }
  };
}

const outcome = (f) => {
  try {
    return f();
  } catch (e) {
    if (e instanceof CredlockError) return { error: e.code };
    throw e;
  }
};

test('the vectors are there', () => assert.ok(files.length >= 10));

for (const file of files) {
  test(`vector ${file}`, () => {
    const v = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    const root = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'credlock-vec-'));
    const storeDir = path.join(root, 'store');
    fs.mkdirSync(storeDir, { mode: 0o700 });
    // Owner-only, as credlock makes them: a key file others can read is refused.
    for (const [name, contents] of Object.entries(v.files)) fs.writeFileSync(path.join(storeDir, name), decode(contents), { mode: 0o600 });
    const sealed = path.join(storeDir, 'credentials.sealed');
    const before = fs.existsSync(sealed) ? fs.readFileSync(sealed) : null;
    const removeEntries = installKeyringEntries(v, root);
    const s = Store.open(storeDir, v.passphrase ? { passphrase: v.passphrase } : {});
    try {
      v.steps.forEach((step, i) => {
        const t = step.tenant ?? '';
        let got;
        switch (step.op) {
          case 'token': got = outcome(() => ({ token: s.token(t, { minValid: step.min_valid_s ?? 60 }) })); break;
          case 'list': got = outcome(() => ({ tenants: s.list().map((x) => ({ tenant: x.tenant, revision: Number(x.revision) })) })); break;
          case 'put': got = outcome(() => ({ revision: Number(s.put(t, step.response).revision) })); break;
          case 'delete': got = outcome(() => ({ deleted: s.delete(t) })); break;
          case 'attachment': got = outcome(() => ({ value: s.attachment(t, step.name) })); break;
          case 'set-attachment': got = outcome(() => ({ revision: Number(s.setAttachment(t, step.name, step.value).revision) })); break;
          case 'expires': {
            const found = s.list().find((x) => x.tenant === t);
            got = found ? { expires_at_ms: found.expiresAtMs ?? null } : { error: 'not-found' };
            break;
          }
          default: throw new Error(`unknown op ${step.op}`);
        }
        assert.deepEqual(got, step.expect, `${file}, step ${i} (${step.op})`);
      });
    } finally {
      s.close();
      removeEntries();
    }
    if (v.unchanged) assert.deepEqual(fs.existsSync(sealed) ? fs.readFileSync(sealed) : null, before, `${file}: the store changed`);
    for (const name of v.absent_after ?? []) assert.equal(fs.existsSync(path.join(storeDir, name)), false, `${file}: ${name} was created`);
    fs.rmSync(root, { recursive: true, force: true });
  });
}
