// The napi-rs addon (native/, over the credlock host library). In a checkout it is
// build/credlock.node (`npm run build`, run-tests.sh); as published (scripts/release.sh) it
// comes prebuilt in a package per platform, credlock-<platform>, an optional dependency of
// this one that npm installs only where its os, cpu and libc match (napi-rs's layout).
import { createRequire } from 'node:module';
import fs from 'node:fs';

const require = createRequire(import.meta.url);

/** `linux-x64-gnu`, `linux-x64-musl`, `darwin-arm64`, ...: the platform package's suffix. */
function platform() {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`;
  // glibcVersionRuntime is present only when Node runs on glibc.
  const glibc = process.report?.getReport?.()?.header?.glibcVersionRuntime;
  return `linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`;
}

function load() {
  if (fs.existsSync(new URL('../build/credlock.node', import.meta.url))) {
    return require('../build/credlock.node');
  }
  const pkg = `credlock-${platform()}`;
  try {
    return require(pkg);
  } catch (e) {
    if (e?.code !== 'MODULE_NOT_FOUND') throw e;
    throw new Error(
      `credlock: no prebuilt addon for this platform (${pkg} is not installed). ` +
        'Prebuilt addons exist for linux-x64-gnu; elsewhere build it from the repository ' +
        '(npm install ./host/node, with a Rust toolchain).',
    );
  }
}

/** @type {typeof import('../build/native.d.ts')} */
export const native = load();
