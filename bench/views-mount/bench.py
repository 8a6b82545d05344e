#!/usr/bin/env python3
"""rtt view mount against materialized files, in the same run (docs/views.md).

N agents x 3 providers (claude: one .md per agent, openai: one AGENTS.md, gemini: one .agent.json per agent).
Builds the workspace, materializes it with `rtt view build`, mounts it with `rtt view mount --all`, checks
`diff -r`, then measures: cold and warm read of every file, `ls -R`, `stat` of every file, the mount process's
memory, and disk used. Cold for materialized files = their pages evicted (posix_fadvise DONTNEED); cold for the
mount = the first pass after mounting (no kernel cache, nothing rendered yet).

usage: bench.py [--agents 1000] [--rtt path/to/rtt] [--keep]   (root: the mount uses mount(2))
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_RTT = os.path.join(HERE, "..", "..", "src", "Rtt.Cli", "bin", "Release", "net10.0", "rtt")


def files_under(root):
    out = []
    for d, _, names in os.walk(root):
        for n in names:
            out.append(os.path.join(d, n))
    out.sort()
    return out


def read_all(paths):
    t = time.perf_counter()
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            total += len(f.read())
    return time.perf_counter() - t, total


def stat_all(paths):
    t = time.perf_counter()
    for p in paths:
        os.stat(p)
    return time.perf_counter() - t


def evict(paths):
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def ls_r(root, runs=5):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(["ls", "-R", root], stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return times


def du_k(path):
    return int(subprocess.run(["du", "-sk", path], capture_output=True, text=True, check=True).stdout.split()[0])


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--rtt", default=DEFAULT_RTT)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    rtt = os.path.abspath(a.rtt)
    tmp = tempfile.mkdtemp(prefix="rtt-mount-bench-")
    ws = os.path.join(tmp, "ws")
    mnt = os.path.join(tmp, "mnt")
    proc = None
    try:
        subprocess.run([rtt, "init", ws], check=True, stdout=subprocess.DEVNULL)
        body = ("Read the input carefully. " * 40).strip()  # ~1 KB of instructions per agent
        os.makedirs(os.path.join(ws, "agents", "common"))
        for prov in ("claude", "openai", "gemini"):
            os.makedirs(os.path.join(ws, "overlays", "provider", prov))
        for i in range(a.agents):
            name = f"agent-{i:04d}"
            with open(os.path.join(ws, "agents", "common", name + ".agent.json"), "w") as f:
                f.write('{"id":"%s","version":"1.0.0","description":"Agent number %d.","instructions":"%s","model":{"hint":"small"},"tools":[]}' % (name, i, body))
            with open(os.path.join(ws, "overlays", "provider", "claude", name + ".patch.json"), "w") as f:
                f.write('{"model":{"hint":"haiku"},"tools":["Read","Grep"]}')
            with open(os.path.join(ws, "overlays", "provider", "openai", name + ".patch.json"), "w") as f:
                f.write('{"model":{"name":"gpt-5"}}')
            with open(os.path.join(ws, "overlays", "provider", "gemini", name + ".patch.json"), "w") as f:
                f.write('{"description":"Agent number %d, for Gemini."}' % i)

        t = time.perf_counter()
        subprocess.run([rtt, "view", "build"], cwd=ws, check=True, stdout=subprocess.DEVNULL)
        build_s = time.perf_counter() - t
        providers = os.path.join(ws, "providers")

        os.makedirs(mnt)
        t = time.perf_counter()
        proc = subprocess.Popen([rtt, "view", "mount", "--all", mnt], cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        mount_s = time.perf_counter() - t
        if not line.startswith("mounted "):
            print("mount failed:", line, proc.stderr.read(), file=sys.stderr)
            return 1

        diff = subprocess.run(["diff", "-r", providers, mnt], capture_output=True, text=True)
        mat_files = files_under(providers)
        mnt_files = files_under(mnt)
        # Cold: the mount's first pass; materialized files with their pages evicted.
        mnt_stat_cold = stat_all(mnt_files)
        mnt_cold, mnt_bytes = read_all(mnt_files)
        mnt_warm, _ = read_all(mnt_files)
        mnt_warm2, _ = read_all(mnt_files)
        evict(mat_files)
        mat_cold, mat_bytes = read_all(mat_files)
        mat_warm, _ = read_all(mat_files)
        mat_warm2, _ = read_all(mat_files)
        mnt_stat = min(stat_all(mnt_files) for _ in range(3))
        mat_stat = min(stat_all(mat_files) for _ in range(3))
        mnt_ls = ls_r(mnt)
        mat_ls = ls_r(providers)
        rss = status(proc.pid, "VmRSS")
        hwm = status(proc.pid, "VmHWM")
        du_mat = du_k(providers)
        du_reg = du_k(os.path.join(ws, ".rtt", "registry"))
        st = os.statvfs(tmp)

        n = len(mnt_files)
        print(f"agents {a.agents} x 3 providers: {n} files, {mnt_bytes} bytes (materialized: {len(mat_files)} files, {mat_bytes} bytes)")
        print(f"diff -r providers/ mount/: {'identical' if diff.returncode == 0 else 'DIFFERENT: ' + diff.stdout[:400]}")
        print(f"rtt view build (materialize + record): {build_s:.2f} s; rtt view mount --all until mounted: {mount_s:.2f} s")
        print("read of every file (open+read+close, python loop):")
        print(f"  mount        cold {mnt_cold*1000:8.1f} ms ({mnt_cold/n*1e6:6.1f} us/file)   warm {min(mnt_warm, mnt_warm2)*1000:8.1f} ms ({min(mnt_warm, mnt_warm2)/n*1e6:6.1f} us/file)")
        print(f"  materialized cold {mat_cold*1000:8.1f} ms ({mat_cold/n*1e6:6.1f} us/file)   warm {min(mat_warm, mat_warm2)*1000:8.1f} ms ({min(mat_warm, mat_warm2)/n*1e6:6.1f} us/file)")
        print("stat of every file:")
        print(f"  mount        cold {mnt_stat_cold*1000:8.1f} ms ({mnt_stat_cold/n*1e6:6.1f} us/file)   warm {mnt_stat*1000:8.1f} ms ({mnt_stat/n*1e6:6.2f} us/file)")
        print(f"  materialized                                  warm {mat_stat*1000:8.1f} ms ({mat_stat/n*1e6:6.2f} us/file)")
        print(f"ls -R (5 runs, first / median): mount {mnt_ls[0]*1000:.1f} / {statistics.median(mnt_ls)*1000:.1f} ms; materialized {mat_ls[0]*1000:.1f} / {statistics.median(mat_ls)*1000:.1f} ms")
        print(f"mount process memory: VmRSS {rss/1024:.1f} MiB, peak VmHWM {hwm/1024:.1f} MiB")
        print(f"disk: materialized providers/ {du_mat} KiB; the mount writes nothing (0 KiB); the registry both read from {du_reg} KiB (block size {st.f_bsize})")
        return 0 if diff.returncode == 0 else 1
    finally:
        if proc is not None:
            subprocess.run([rtt, "view", "unmount", "--lazy", mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", mnt])
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
