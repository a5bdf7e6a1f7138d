"""Process start under the preload, measured one way for every bench script.

run_benchmarks.sh (its process-start section) and compare_process_start.py (several builds of
the recorder in one run) both time /bin/true and a shell loop of short processes with these:
each process is started with posix_spawn and reaped with wait4, timed by the wall clock and by
its own CPU time (user + system of the child); variants are interleaved, so drift hits them alike.
"""
import os
import statistics
import sys
import time

TRUE = ["/bin/true"]
# A shell loop of ~240 short processes, as a build or a test suite's wrapper script runs them.
SHELL_LOOP = ["/bin/sh", "-c",
              "for i in $(seq 40); do /bin/true; uname -s >/dev/null; "
              "echo x | sed s/x/y/ >/dev/null; which sh >/dev/null; done"]
PER_ROUND = 50  # /bin/true processes per variant in one round


def untraced_env():
    """This environment without the recorder's variables."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("DLTRACE_") and k != "LD_PRELOAD"}


def traced_env(base, preload, output_dir):
    return dict(base, LD_PRELOAD=preload, DLTRACE_OUTPUT=output_dir + "/", DLTRACE_QUIET="1")


def clear(*dirs):
    """Removes the traces written into `dirs`."""
    for d in dirs:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))


def once(cmd, env):
    """(wall seconds, CPU seconds of the child) of one run of `cmd`; exits if it fails."""
    t = time.perf_counter()
    pid = os.posix_spawn(cmd[0], cmd, env)
    _, status, ru = os.wait4(pid, 0)
    if status != 0:
        sys.exit(f"{cmd} failed ({status})")
    return time.perf_counter() - t, ru.ru_utime + ru.ru_stime


def true_medians(variants, runs, after_round):
    """/bin/true in `runs` rounds of PER_ROUND processes per variant ((name, env) pairs, or
    (name, env, command) for another short program), interleaved; after_round() after each
    round. Returns {name: (wall, cpu)}: the median of the round medians."""
    wall = {v[0]: [] for v in variants}
    cpu = {v[0]: [] for v in variants}
    for _ in range(runs):
        for name, env, *command in variants:
            cmd = command[0] if command else TRUE
            w, c = zip(*(once(cmd, env) for _ in range(PER_ROUND)))
            wall[name].append(statistics.median(w))
            cpu[name].append(statistics.median(c))
        after_round()
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n])) for n in wall}


def shell_loop_medians(variants, rounds, after_each):
    """SHELL_LOOP `rounds` times per variant, interleaved; after_each(name) after each run.
    Returns {name: median wall seconds}."""
    res = {n: [] for n, _ in variants}
    for _ in range(rounds):
        for name, env in variants:
            res[name].append(once(SHELL_LOOP, env)[0])
            after_each(name)
    return {n: statistics.median(res[n]) for n, _ in variants}
