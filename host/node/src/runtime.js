// The credlock component, transpiled by jco (`--instantiation sync`): compiled once per
// process, instantiated once per open Store with that store's platform imports.
import fs from 'node:fs';
import { instantiate } from '../build/gen/credlock.js';
import { makeLocks } from './platform/locks.js';
import { makeFiles } from './platform/files.js';
import { makeSealing } from './platform/sealing.js';
import { makeEndpoint } from './platform/endpoint.js';
import { clock, random, types, wasiImports } from './platform/misc.js';

const GEN = new URL('../build/gen/', import.meta.url);
const modules = new Map();

/** Compile (once per process) the core module `name` of the transpiled component. */
function getCoreModule(name) {
  let m = modules.get(name);
  if (!m) {
    m = new WebAssembly.Module(fs.readFileSync(new URL(name, GEN)));
    modules.set(name, m);
  }
  return m;
}

/** Compile every core module now (so a Store's first call pays nothing). */
export function preload() {
  for (const f of fs.readdirSync(GEN)) if (f.endsWith('.wasm')) getCoreModule(f);
}

/** Both spellings of an interface name: jco looks them up unversioned. */
function both(map) {
  const out = {};
  for (const [k, v] of Object.entries(map)) {
    out[k] = v;
    out[k.replace(/@[^/]*$/, '')] = v;
  }
  return out;
}

/**
 * A live instance over `platform` = { dir, keyring, policy }.
 * Returns { store, releaseLocks, heldLocks, slotSources }: `store` is the exported interface;
 * `slotSources.passphrase` is the new passphrase of an `addSlot` call, set for that call only.
 */
export function instantiateStore({ dir, keyring, policy }) {
  const locks = makeLocks(dir);
  const slotSources = { passphrase: undefined };
  const imports = both({
    'credlock:store/types@0.1.0': types,
    'credlock:store/locks@0.1.0': locks.imports,
    'credlock:store/files@0.1.0': makeFiles(dir),
    'credlock:store/sealing@0.1.0': makeSealing(keyring, slotSources),
    'credlock:store/token-endpoint@0.1.0': makeEndpoint(policy),
    'credlock:store/clock@0.1.0': clock,
    'credlock:store/random@0.1.0': random,
    ...wasiImports(),
  });
  const root = instantiate(getCoreModule, imports);
  return { store: root.store, releaseLocks: locks.releaseAll, heldLocks: locks.held, slotSources };
}
