#!/usr/bin/env node
// Build what the package loads at run time, under build/:
//   build/credlock_component.wasm  the component (copied from the Rust build)
//   build/gen/                     its jco transpilation (--instantiation sync) with .d.ts types
//                                  generated from the component's WIT
//   build/credlock_native.node     the napi-rs addon (native/), built with cargo --release
//
// The component comes from CREDLOCK_COMPONENT_WASM, else the repository's guest build:
//   cd ../.. && cargo build -p credlock-component --target wasm32-wasip2 --profile guest --target-dir target/guest
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const repo = path.resolve(root, '..', '..');
const build = path.join(root, 'build');
const args = new Set(process.argv.slice(2));

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    console.error(`build: ${cmd} ${argv.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`);
    process.exit(1);
  }
}

fs.mkdirSync(build, { recursive: true });

if (!args.has('--no-component')) {
  const wasm = process.env.CREDLOCK_COMPONENT_WASM
    ?? path.join(repo, 'target', 'guest', 'wasm32-wasip2', 'guest', 'credlock_component.wasm');
  if (!fs.existsSync(wasm)) {
    console.error(`build: no component at ${wasm}; build it with\n  cd ${repo} && cargo build -p credlock-component --target wasm32-wasip2 --profile guest --target-dir target/guest`);
    process.exit(1);
  }
  const copy = path.join(build, 'credlock_component.wasm');
  const gen = path.join(build, 'gen');
  const same = fs.existsSync(copy) && fs.existsSync(path.join(gen, 'credlock.js'))
    && Buffer.compare(fs.readFileSync(copy), fs.readFileSync(wasm)) === 0;
  if (!same) {
    fs.copyFileSync(wasm, copy);
    fs.rmSync(gen, { recursive: true, force: true });
    // `jco transpile build/credlock_component.wasm --instantiation sync --name credlock -o build/gen`
    // through the library the jco 1.35 CLI runs for it (byte-identical output), without the
    // CLI's other dependencies (some of whose platform packages the npm registry mirror
    // lacks, which breaks `npm ci`). ComponentError wrapping kept, as the CLI does.
    const { transpile, writeFiles } = await import('@bytecodealliance/jco-transpile');
    const { files } = await transpile(copy, { name: 'credlock', instantiation: 'sync', outDir: gen, noComponentErrorWrapping: false });
    await writeFiles(files, {});
    // jco's generated _debugLog reads process.env.JCO_DEBUG on every call (~200 call sites,
    // ~100 us per store call); read it once at instantiation instead. Same behaviour.
    const js = path.join(gen, 'credlock.js');
    const src = fs.readFileSync(js, 'utf8');
    const slow = 'if (!globalThis?.process?.env?.JCO_DEBUG) { return; }';
    if (src.includes(slow)) {
      const fast = src.replaceAll(slow, 'if (!JCO_DEBUG_ONCE) { return; }')
        .replace('export function instantiate(', 'const JCO_DEBUG_ONCE = !!globalThis?.process?.env?.JCO_DEBUG;\nexport function instantiate(');
      fs.writeFileSync(js, fast);
    } else {
      console.error('build: note: jco output changed; the JCO_DEBUG patch was not applied');
    }
    console.error(`build: transpiled ${path.relative(root, copy)} -> ${path.relative(root, gen)}/`);
  }
}

if (!args.has('--no-native')) {
  const manifest = path.join(root, 'native', 'Cargo.toml');
  run('cargo', ['build', '--release', '--quiet', '--manifest-path', manifest]);
  const target = process.env.CARGO_TARGET_DIR ?? path.join(root, 'native', 'target');
  const so = path.join(target, 'release', 'libcredlock_node_native.so');
  const dest = path.join(build, 'credlock_native.node');
  // Replace by rename: a running process keeps its mapped copy intact.
  const tmp = `${dest}.tmp-${process.pid}`;
  fs.copyFileSync(so, tmp);
  fs.renameSync(tmp, dest);
}
