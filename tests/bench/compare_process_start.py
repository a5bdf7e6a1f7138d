#!/usr/bin/python3
"""Process start under several builds of the recorder in one run (before/after, ablations).

    tests/bench/compare_process_start.py RUNS LABEL=PRELOAD[@MODE] ...

MODE: "both" (default: the preload loaded recording nothing, DLTRACE_ONLY naming no process,
and traced), "traced", or "tmpfs" (traced, the trace on /dev/shm: the file system's share).
/bin/true in rounds of 50 per variant, interleaved, the median of the round medians (wall and
CPU of the child), then a shell loop of ~240 short processes (as run_benchmarks.sh), with
--only 'python3*' for "both". Wall times on a shared VM move +-30%: compare within one run.
"""
import os
import statistics
import sys
import tempfile
import time


def main():
    runs = int(sys.argv[1])
    work = tempfile.mkdtemp(prefix="dltrace-start-")
    shm = tempfile.mkdtemp(prefix="dltrace-start-", dir="/dev/shm")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("DLTRACE_") and k != "LD_PRELOAD"}
    variants, loop_variants = [("native", base)], [("native", base)]
    for arg in sys.argv[2:]:
        label, rest = arg.split("=", 1)
        path, _, mode = rest.partition("@")
        mode = mode or "both"
        traced = dict(base, LD_PRELOAD=path, DLTRACE_OUTPUT=work + "/", DLTRACE_QUIET="1")
        if mode == "both":
            variants.append((f"{label}, records nothing", dict(traced, DLTRACE_ONLY="no-such")))
            loop_variants.append((f"{label}, --only 'python3*'",
                                  dict(traced, DLTRACE_ONLY="python3*")))
        if mode == "tmpfs":
            variants.append((f"{label}, traced to tmpfs", dict(traced, DLTRACE_OUTPUT=shm + "/")))
        else:
            variants.append((f"{label}, traced", traced))
            loop_variants.append((f"{label}, traced", traced))

    def clear():
        for d in (work, shm):
            for f in os.listdir(d):
                os.unlink(os.path.join(d, f))

    def once(cmd, env):
        t = time.perf_counter()
        pid = os.posix_spawn(cmd[0], cmd, env)
        _, status, ru = os.wait4(pid, 0)
        if status != 0:
            sys.exit(f"{cmd} failed ({status})")
        return time.perf_counter() - t, ru.ru_utime + ru.ru_stime

    wall = {n: [] for n, _ in variants}
    cpu = {n: [] for n, _ in variants}
    for _ in range(runs):
        for name, env in variants:
            w, c = zip(*(once(["/bin/true"], env) for _ in range(50)))
            wall[name].append(statistics.median(w))
            cpu[name].append(statistics.median(c))
        clear()
    nw, nc = statistics.median(wall["native"]), statistics.median(cpu["native"])
    for name, _ in variants:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"/bin/true, {name:<34} wall {w * 1e3:6.3f} ms ({(w - nw) * 1e3:+6.3f})"
              f"  CPU {c * 1e3:6.3f} ms ({(c - nc) * 1e3:+6.3f})")

    loop = ["/bin/sh", "-c",
            "for i in $(seq 40); do /bin/true; uname -s >/dev/null; "
            "echo x | sed s/x/y/ >/dev/null; which sh >/dev/null; done"]
    res = {n: [] for n, _ in loop_variants}
    for _ in range(max(3, runs // 2)):
        for name, env in loop_variants:
            res[name].append(once(loop, env)[0])
            clear()
    nat = statistics.median(res["native"])
    for name, _ in loop_variants:
        m = statistics.median(res[name])
        print(f"shell loop of ~240 processes, {name:<34} {m * 1e3:7.1f} ms  {m / nat:5.2f}x")
    os.rmdir(work)
    os.rmdir(shm)


if __name__ == "__main__":
    main()
