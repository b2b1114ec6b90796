#!/usr/bin/env python3
"""Where one `put` spends its time, phase by phase, beside the floor's read-modify-write.

Runs credlock-bench's single-process workers (`worker-credlock-rmw`: K puts through the
component; `worker-floor-rmw`: K lock/read/modify/seal/atomic-write updates) twice each:
untraced, for the wall time per operation (the difference between a run of K+WARM and one
of WARM operations, so process start-up and the first call cancel out), and under
`strace -T`, for each system call's time, attributed to a phase by the file it touches.
What is left of the wall time after the system calls is user-space work: the component
call, sealing, merging, JSON. strace slows every call by a few microseconds, so the
syscall figures are upper bounds; the fsyncs, which dominate, are barely affected.

    python3 bench/phases.py [--bench target/release/credlock-bench] [--k 400] [--rounds 3]

Prints a markdown table (microseconds per operation). Never fails on speed.
"""
import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(?:\s+\w+)?.*<([\d.]+)>$")

PHASES = [
    "lock (open, flock, unlock)",
    "privacy and symlink checks (statx)",
    "read the store (open, read, close)",
    "temp file: create and write",
    "temp file: fsync",
    "backup: link, chmod check, rename",
    "rename over the store",
    "directory: open, fsync, close",
    "random (nonce, temp names)",
    "other system calls",
]


def classify(call, args, path_of, dirs):
    """The phase of one system call, from its name and the file it names or holds."""
    fd = None
    m = re.match(r"(-?\d+)", args)
    if m:
        fd = int(m.group(1))
    path = ""
    pm = re.search(r'"([^"]*)"', args)
    if pm:
        path = pm.group(1)
    if call == "getrandom":
        return PHASES[8]
    if call == "flock":
        return PHASES[0]
    if call in ("linkat", "link"):
        return PHASES[5]
    if call in ("rename", "renameat", "renameat2"):
        return PHASES[5] if ".credentials.sealed.bak" in args or "bak" in path else PHASES[6]
    if call in ("openat", "open"):
        if path.endswith(".lock") or "lock" in os.path.basename(path):
            return PHASES[0]
        if "O_DIRECTORY" in args or path.rstrip("/") in dirs:
            return PHASES[7]
        if "tmp" in os.path.basename(path):
            return PHASES[3]
        return PHASES[2]
    if call in ("statx", "newfstatat", "fstat", "lstat", "stat"):
        held = path_of.get(fd, "") if call == "fstat" else ""
        if "bak" in path or "bak" in held:
            return PHASES[5]
        if call == "fstat" and held:
            return PHASES[2]
        return PHASES[1]
    if call in ("fchmod", "chmod", "fchmodat"):
        return PHASES[5]
    held = path_of.get(fd, "")
    if call in ("fsync", "fdatasync"):
        return PHASES[7] if held.endswith("/") or held == "<dir>" else PHASES[4]
    if call in ("write", "pwrite64", "writev"):
        return PHASES[3] if "tmp" in held else PHASES[9]
    if call in ("read", "pread64"):
        return PHASES[2] if held else PHASES[9]
    if call == "close":
        if held == "<dir>":
            return PHASES[7]
        if "lock" in os.path.basename(held):
            return PHASES[0]
        if "tmp" in held:
            return PHASES[3]
        return PHASES[2] if held else PHASES[9]
    return PHASES[9]


def trace(cmd, k, store_dir):
    """Per-operation microseconds of each phase, from one strace run of `cmd`."""
    out = tempfile.mktemp(prefix="phases-", suffix=".strace")
    subprocess.run(["strace", "-f", "-T", "-qq", "-o", out] + cmd, check=True)
    dirs = {store_dir.rstrip("/")}
    totals = collections.Counter()
    calls = collections.Counter()
    path_of = {}
    with open(out) as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            _, call, args, ret, secs = m.groups()
            phase = classify(call, args, path_of, dirs)
            if call in ("openat", "open") and ret not in ("?",) and int(ret) >= 0:
                pm = re.search(r'"([^"]*)"', args)
                p = pm.group(1) if pm else ""
                is_dir = "O_DIRECTORY" in args or p.rstrip("/") in dirs
                path_of[int(ret)] = "<dir>" if is_dir else p
            if call == "close":
                m2 = re.match(r"(\d+)", args)
                if m2:
                    path_of.pop(int(m2.group(1)), None)
            totals[phase] += float(secs) * 1e6
            calls[phase] += 1
    os.unlink(out)
    return {p: totals[p] / k for p in PHASES}, {p: calls[p] / k for p in PHASES}


def wall(cmd_for, k, warm, rounds):
    """Wall microseconds per operation: (run of warm+k) − (run of warm), median of rounds."""
    per = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run(cmd_for(warm + k), check=True)
        long = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run(cmd_for(warm), check=True)
        short = time.perf_counter() - t
        per.append((long - short) / k * 1e6)
    return statistics.median(per)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="target/release/credlock-bench")
    ap.add_argument("--k", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if not shutil.which("strace"):
        sys.exit("strace is not installed: run scripts/setup.sh")
    work = tempfile.mkdtemp(prefix="credlock-phases-")
    cache = os.path.join(work, "cache")
    results = {}
    for who, mode in (("credlock", "worker-credlock-rmw"), ("floor", "worker-floor-rmw")):
        def cmd_for(k, d=os.path.join(work, who)):
            return [a.bench, mode, d, "w0", str(k), cache]
        subprocess.run(cmd_for(5), check=True)  # create the store, warm the cache
        w = wall(cmd_for, a.k, 20, a.rounds)
        t, c = trace(cmd_for(a.k), a.k, os.path.join(work, who))
        results[who] = (w, t, c)
    shutil.rmtree(work, ignore_errors=True)

    print(f"| phase (µs per operation; calls in brackets) | credlock `put` | floor update |")
    print("|---|---|---|")
    for p in PHASES:
        cells = []
        for who in ("credlock", "floor"):
            _, t, c = results[who]
            cells.append(f"{t[p]:.0f} ({c[p]:.1f})" if c[p] else "—")
        print(f"| {p} | {cells[0]} | {cells[1]} |")
    sums = {who: sum(results[who][1].values()) for who in results}
    print(f"| all system calls, traced | {sums['credlock']:.0f} ({sum(results['credlock'][2].values()):.1f}) "
          f"| {sums['floor']:.0f} ({sum(results['floor'][2].values()):.1f}) |")
    print(f"| **wall, untraced** | **{results['credlock'][0]:.0f}** | **{results['floor'][0]:.0f}** |")
    ratio = results["credlock"][0] / results["floor"][0]
    print(f"\nratio (untraced wall): {ratio:.2f}× the floor's update")


if __name__ == "__main__":
    main()
