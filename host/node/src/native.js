// The napi-rs addon (native/, over the credlock host library). In a checkout it is
// build/credlock.node (`npm run build`, run-tests.sh); as published (scripts/release.sh) it
// comes prebuilt in a package per platform, credlock-<platform>, an optional dependency of
// this one that npm installs only where its os, cpu and libc match (napi-rs's layout).
import { createRequire } from 'node:module';
import fs from 'node:fs';

const require = createRequire(import.meta.url);

/**
 * The platform packages that may hold this platform's addon: `credlock-linux-x64-gnu`,
 * `credlock-darwin-arm64`, ... On Linux both libcs are candidates: npm installs only the
 * package whose `libc` matches, so trying each finds it, where asking Node which libc it
 * runs on (`process.report.getReport()`) cost every process ~4 ms.
 */
function candidates() {
  if (process.platform !== 'linux') return [`credlock-${process.platform}-${process.arch}`];
  return ['gnu', 'musl'].map((libc) => `credlock-linux-${process.arch}-${libc}`);
}

function load() {
  if (fs.existsSync(new URL('../build/credlock.node', import.meta.url))) {
    return require('../build/credlock.node');
  }
  // A package that is installed but does not load (the other libc's, installed by force) is
  // passed over for the next; if none loads, the first such failure is the one to report.
  let failed;
  for (const pkg of candidates()) {
    try {
      return require(pkg);
    } catch (e) {
      if (e?.code !== 'MODULE_NOT_FOUND') failed ??= e;
    }
  }
  if (failed) throw failed;
  throw new Error(
    `credlock: no prebuilt addon for this platform (none of ${candidates().join(', ')} is ` +
      'installed). Prebuilt addons exist for linux-x64-gnu; elsewhere build it from the ' +
      'repository (npm install ./host/node, with a Rust toolchain).',
  );
}

/** @type {typeof import('../build/native.d.ts')} */
export const native = load();
