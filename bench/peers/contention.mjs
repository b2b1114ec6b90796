// N processes x K read-modify-write updates of one JSON file under proper-lockfile.
// Usage: node contention.mjs proper-lockfile N K DIR
//   ->  {"ops_per_s": ..., "ops_per_s_with_start": ..., "lost": ...}
// As credlock-bench's own workers do, each worker makes one uncounted update, says it is
// ready and waits for "go": the clock starts when all are ready (contention.py says why).
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
  const go = new Promise((res) => process.once('message', res));
  for (let i = 0; i < Number(k) + 1; i++) {
    if (i === 1) {
      process.send('ready');
      await go;
    }
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
  const spawned = performance.now();
  const kids = [];
  const readies = [];
  const exits = [];
  for (let i = 0; i < Number(n); i++) {
    const kid = fork(new URL(import.meta.url).pathname, [lib, n, k, dir], { env: { ...process.env, PEER_WORKER: `w${i}` } });
    kids.push(kid);
    readies.push(new Promise((res) => kid.once("message", res)));
    exits.push(new Promise((res) => kid.on("exit", res)));
  }
  await Promise.all(readies);
  const t = performance.now();
  for (const kid of kids) kid.send("go");
  await Promise.all(exits);
  const end = performance.now();
  const secs = (end - t) / 1000;
  let data = {};
  try { data = JSON.parse(fs.readFileSync(file, "utf8")); } catch {}
  const total = Object.values(data).reduce((a, b) => a + b, 0);
  const ops = Number(n) * Number(k);
  console.log(JSON.stringify({ ops_per_s: ops / secs, ops_per_s_with_start: ops / ((end - spawned) / 1000), lost: Number(n) * (Number(k) + 1) - total }));
}
