#!/usr/bin/python3
"""Process start under several builds of the recorder in one run (before/after, ablations).

    tests/bench/compare_process_start.py RUNS LABEL=PRELOAD[@MODE] ...

MODE: "both" (default: the preload loaded recording nothing, DLTRACE_ONLY naming no process,
and traced), "traced", or "tmpfs" (traced, the trace on /dev/shm: the file system's share).
/bin/true in rounds of 50 per variant, interleaved, the median of the round medians (wall and
CPU of the child), then a shell loop of ~240 short processes (as run_benchmarks.sh), with
--only 'python3*' for "both". Wall times on a shared VM move +-30%: compare within one run.
Measured as run_benchmarks.sh measures them (process_start.py).
"""
import os
import sys
import tempfile

import process_start as ps


def main():
    runs = int(sys.argv[1])
    work = tempfile.mkdtemp(prefix="dltrace-start-")
    shm = tempfile.mkdtemp(prefix="dltrace-start-", dir="/dev/shm")
    base = ps.untraced_env()
    variants, loop_variants = [("native", base)], [("native", base)]
    for arg in sys.argv[2:]:
        label, rest = arg.split("=", 1)
        path, _, mode = rest.partition("@")
        mode = mode or "both"
        traced = ps.traced_env(base, path, work)
        if mode == "both":
            variants.append((f"{label}, records nothing", dict(traced, DLTRACE_ONLY="no-such")))
            loop_variants.append((f"{label}, --only 'python3*'",
                                  dict(traced, DLTRACE_ONLY="python3*")))
        if mode == "tmpfs":
            variants.append((f"{label}, traced to tmpfs", dict(traced, DLTRACE_OUTPUT=shm + "/")))
        else:
            variants.append((f"{label}, traced", traced))
            loop_variants.append((f"{label}, traced", traced))

    def clear(*_):
        ps.clear(work, shm)

    med = ps.true_medians(variants, runs, clear)
    nw, nc = med["native"]
    for name, _ in variants:
        w, c = med[name]
        print(f"/bin/true, {name:<34} wall {w * 1e3:6.3f} ms ({(w - nw) * 1e3:+6.3f})"
              f"  CPU {c * 1e3:6.3f} ms ({(c - nc) * 1e3:+6.3f})")

    res = ps.shell_loop_medians(loop_variants, max(3, runs // 2), clear)
    nat = res["native"]
    for name, _ in loop_variants:
        m = res[name]
        print(f"shell loop of ~240 processes, {name:<34} {m * 1e3:7.1f} ms  {m / nat:5.2f}x")
    os.rmdir(work)
    os.rmdir(shm)


if __name__ == "__main__":
    main()
