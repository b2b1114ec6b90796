// Many Node and Rust processes writing one store at once, with readers of both kinds:
// nothing lost (revision and generation counts), no torn read, no error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Store } from '../src/index.js';
import { CLI, runNode, startChild, tmpStore } from './helpers.mjs';

const NODE_WRITERS = 8;
const RUST_WRITERS = 8;
const K = 6; // puts per writer to its own tenant, and as many to the shared one

test(`${NODE_WRITERS} Node and ${RUST_WRITERS} Rust writers, 2+2 readers, one store: nothing lost, nothing torn`, async (t) => {
  const dir = tmpStore('concurrent');
  const stop = path.join(path.dirname(dir), `${path.basename(dir)}.stop`);
  const env = { CREDLOCK_STORE: dir, CREDLOCK_LOCK_TIMEOUT: '120' };
  const t0 = Date.now();

  // The store does not exist yet: the first writers race to create it (and its key file).
  const rustWriter = (j) => startChild('bash', ['-c', `
    set -u
    for i in $(seq 1 ${K}); do
      printf '{"access_token":"rust${j}-own-%d","expires_in":3600}' "$i" | "$CLI" put rust${j} 2>/dev/null || { echo "put own failed: $?"; exit 1; }
      printf '{"access_token":"rust${j}-shared-%d","expires_in":3600}' "$i" | "$CLI" put shared 2>/dev/null || { echo "put shared failed: $?"; exit 1; }
    done
    echo done`], { env: { ...env, CLI } }).then((c) => c.done);
  const rustReader = () => startChild('bash', ['-c', `
    set -u; n=0; bad=0
    while [ ! -e "$STOP" ]; do
      out=$("$CLI" token shared --min-valid 0 2>/dev/null); rc=$?
      if [ $rc -eq 0 ]; then
        case "$out" in node[0-9]*-shared-[0-9]*|rust[0-9]*-shared-[0-9]*) ;; *) echo "torn: $out"; bad=$((bad+1));; esac
      elif [ $rc -ne 3 ]; then echo "exit $rc"; bad=$((bad+1)); fi
      n=$((n+1))
    done
    echo "reads=$n bad=$bad"`], { env: { ...env, CLI, STOP: stop } }).then((c) => c.done);

  const readers = [
    runNode('reader.mjs', [dir, stop], env),
    runNode('reader.mjs', [dir, stop], env),
    rustReader(),
    rustReader(),
  ];
  const writers = [
    ...[...Array(NODE_WRITERS)].map((_, j) => runNode('writer.mjs', [dir, `node${j}`, String(K)], env)),
    ...[...Array(RUST_WRITERS)].map((_, j) => rustWriter(j)),
  ];
  const w = await Promise.all(writers);
  fs.writeFileSync(stop, '');
  const r = await Promise.all(readers);
  const elapsed = Date.now() - t0;

  w.slice(0, NODE_WRITERS).forEach((x, j) => assert.deepEqual(JSON.parse(x.stdout), { ok: true }, `node writer ${j}: ${x.stdout} ${x.stderr}`));
  w.slice(NODE_WRITERS).forEach((x, j) => assert.equal(x.stdout.trim(), 'done', `rust writer ${j}: ${x.stdout}`));
  for (const x of r.slice(0, 2)) {
    const rep = JSON.parse(x.stdout);
    assert.deepEqual(rep.bad, [], 'node reader');
    t.diagnostic(`node reader: ${rep.reads} clean reads`);
  }
  for (const x of r.slice(2)) {
    assert.match(x.stdout, /bad=0\s*$/, `rust reader: ${x.stdout}`);
    t.diagnostic(`rust reader: ${x.stdout.trim()}`);
  }

  const s = Store.open(dir);
  const tenants = new Map(s.list().map((x) => [x.tenant, x]));
  for (let j = 0; j < NODE_WRITERS; j++) {
    assert.equal(tenants.get(`node${j}`).revision, K, `node${j}`);
    assert.equal(s.token(`node${j}`), `node${j}-own-${K}`);
  }
  for (let j = 0; j < RUST_WRITERS; j++) {
    assert.equal(tenants.get(`rust${j}`).revision, K, `rust${j}`);
    assert.equal(s.token(`rust${j}`), `rust${j}-own-${K}`);
  }
  const writes = (NODE_WRITERS + RUST_WRITERS) * K;
  assert.equal(tenants.get('shared').revision, writes, 'every write to the shared tenant counted');
  // The generation counts the store's writes: at most one per put (group commit writes
  // several puts in one), and the revisions above count every put.
  assert.ok(s.info().generation <= 2 * writes, 'no more writes than puts');
  assert.equal(tenants.size, NODE_WRITERS + RUST_WRITERS + 1);
  // No temporary file left behind, one key file.
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.')), []);
  t.diagnostic(`${2 * writes} writes by ${NODE_WRITERS + RUST_WRITERS} processes in ${elapsed} ms`);
});
