#!/usr/bin/env node
// `npm install` of this package (e.g. `npm install ./host/node` from the repository): build
// the addon if build/credlock.node is missing. With @napi-rs/cli present (this package's own
// `npm ci`), `npm run build:release`; as a dependency, where dev dependencies are absent, the
// same build by cargo directly (release, stripped), in the repository's workspace.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const out = path.join(root, 'build', 'credlock.node');
if (fs.existsSync(out)) process.exit(0);

const run = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    console.error(`credlock: ${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`);
    process.exit(1);
  }
};

if (fs.existsSync(path.join(root, 'node_modules', '@napi-rs', 'cli'))) {
  run('npm', ['run', 'build:release']);
} else {
  const meta = spawnSync('cargo', ['metadata', '--format-version', '1', '--no-deps', '--manifest-path', path.join(root, 'native', 'Cargo.toml')], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (meta.status !== 0) {
    console.error(`credlock: cargo is required to build the addon (${meta.stderr ?? meta.error})`);
    process.exit(1);
  }
  const target = JSON.parse(meta.stdout).target_directory;
  // The workspace's own release profile, so the host's release build is reused; the copy is
  // stripped afterwards (a profile override would rebuild every dependency).
  run('cargo', ['build', '--release', '-p', 'credlock-node']);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const lib = path.join(target, 'release', 'libcredlock_node.so');
  const stripped = spawnSync('strip', ['-o', out, lib], { stdio: 'inherit' });
  if (stripped.status !== 0) fs.copyFileSync(lib, out);
}
