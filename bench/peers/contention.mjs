// N processes x K read-modify-write updates of one JSON file under proper-lockfile.
// Usage: node contention.mjs proper-lockfile N K DIR  ->  {"ops_per_s": ..., "lost": ...}
import { fork } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const [, , lib, n, k, dir] = process.argv;
const file = path.join(dir, "state.json");

if (process.env.PEER_WORKER) {
  const lockfile = require("proper-lockfile");
  if (!fs.existsSync(file)) fs.writeFileSync(file, "{}", { flag: "a" });
  const name = process.env.PEER_WORKER;
  for (let i = 0; i < Number(k); i++) {
    // Its documented retry loop is the only way to wait: there is no blocking lock.
    let release;
    for (;;) {
      try {
        release = lockfile.lockSync(file, { stale: 30000 });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    let data = {};
    try { data = JSON.parse(fs.readFileSync(file, "utf8") || "{}"); } catch {}
    data[name] = (data[name] || 0) + 1;
    const tmp = `${file}.tmp-${process.pid}`;
    const fd = fs.openSync(tmp, "w");
    fs.writeSync(fd, JSON.stringify(data));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
    release();
  }
  process.exit(0);
} else {
  const t = performance.now();
  const kids = [];
  for (let i = 0; i < Number(n); i++) {
    kids.push(new Promise((res) => fork(new URL(import.meta.url).pathname, [lib, n, k, dir], { env: { ...process.env, PEER_WORKER: `w${i}` } }).on("exit", res)));
  }
  await Promise.all(kids);
  const secs = (performance.now() - t) / 1000;
  let data = {};
  try { data = JSON.parse(fs.readFileSync(file, "utf8")); } catch {}
  const total = Object.values(data).reduce((a, b) => a + b, 0);
  console.log(JSON.stringify({ ops_per_s: (Number(n) * Number(k)) / secs, lost: Number(n) * Number(k) - total }));
}
