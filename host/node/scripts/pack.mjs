#!/usr/bin/env node
// Packs the Node package as napi-rs publishes one (scripts/release.sh runs this):
//   credlock-<version>.tgz                    the JavaScript API, with the platform packages
//                                             as optionalDependencies
//   credlock-linux-x64-gnu-<version>.tgz      the prebuilt addon (os/cpu/libc select it)
// Neither runs a script on install: nothing is compiled where it is installed.
//
//   node scripts/pack.mjs ADDON.node OUT_DIR
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [addon, outArg] = process.argv.slice(2);
if (!addon || !outArg) {
  console.error('usage: node scripts/pack.mjs ADDON.node OUT_DIR');
  process.exit(2);
}
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const out = path.resolve(outArg);
const source = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const { version } = source;
// The platforms built here; napi.targets lists the ones the package is meant for.
const platforms = [{ suffix: 'linux-x64-gnu', os: 'linux', cpu: 'x64', libc: 'glibc' }];

const stage = fs.mkdtempSync(path.join(out, '.npm-stage-'));
const pack = (dir) => {
  const r = spawnSync('npm', ['pack', '--pack-destination', out, '--loglevel=error'], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`npm pack in ${dir} failed:\n${r.stderr}`);
    process.exit(1);
  }
  console.log(`pack: ${r.stdout.trim()}`);
};

for (const p of platforms) {
  const name = `${source.name}-${p.suffix}`;
  const file = `credlock.${p.suffix}.node`;
  const dir = path.join(stage, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(addon, path.join(dir, file));
  fs.writeFileSync(path.join(dir, 'README.md'), `# ${name}\n\nThe prebuilt ${p.suffix} addon of [credlock](https://www.npmjs.com/package/credlock); install \`credlock\`, which depends on it.\n`);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name, version, description: `The ${p.suffix} addon of credlock`, license: source.license,
    os: [p.os], cpu: [p.cpu], libc: [p.libc], main: file, files: [file], engines: source.engines,
  }, null, 2) + '\n');
  pack(dir);
}

// The JavaScript package: src/ and the README; no build scripts, no dev dependencies.
const dir = path.join(stage, source.name);
fs.mkdirSync(dir, { recursive: true });
fs.cpSync(path.join(root, 'src'), path.join(dir, 'src'), { recursive: true });
fs.copyFileSync(path.join(root, 'README.md'), path.join(dir, 'README.md'));
const published = { ...source };
delete published.private;
delete published.scripts;
delete published.devDependencies;
delete published.napi;
published.files = ['src', 'README.md'];
published.optionalDependencies = Object.fromEntries(platforms.map((p) => [`${source.name}-${p.suffix}`, version]));
fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(published, null, 2) + '\n');
pack(dir);
fs.rmSync(stage, { recursive: true, force: true });
