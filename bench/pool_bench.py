"""Python baseline for bench/pool_bench.lua: submit-then-collect of empty
tasks with concurrent.futures.ThreadPoolExecutor (2 threads) and with
multiprocessing.Pool (2 processes, apply_async then get), Pool(2).map of
small integers through an identity function, and the speed-up of a
CPU-bound Pool.map on 2 processes over 1 (with the CPUs the 2 workers got). Prints RESULT lines for
bench/run; docs/POOLS.md says what each one means."""

import concurrent.futures as cf
import multiprocessing as mp
import os
import statistics
import time

QUICK = os.environ.get("BENCH_QUICK") == "1"
TASKS = 10_000 if QUICK else 100_000
ITEMS = 100_000 if QUICK else 1_000_000
CPU_N = 2_000_000 if QUICK else 20_000_000
RUNS = 1 if QUICK else 3


def result(metric, value, unit):
    print("RESULT %s %.6g %s" % (metric, value, unit), flush=True)


def empty():
    pass


def identity(x):
    return x


def count(r):
    x = 0
    for i in range(r[0], r[1] + 1):
        x += i % 7
    return x


def thread_submit_get(ex, n):
    t0 = time.perf_counter()
    fs = [ex.submit(empty) for _ in range(n)]
    for f in fs:
        f.result()
    return (time.perf_counter() - t0) / n * 1e6


def process_submit_get(pool, n):
    t0 = time.perf_counter()
    rs = [pool.apply_async(empty) for _ in range(n)]
    for r in rs:
        r.get()
    return (time.perf_counter() - t0) / n * 1e6


def main():
    ctx = mp.get_context("fork")
    with cf.ThreadPoolExecutor(2) as ex:
        thread_submit_get(ex, TASKS // 10)
        result("pool_thread_submit_get",
               statistics.median(thread_submit_get(ex, TASKS) for _ in range(RUNS)), "us")
    with ctx.Pool(2) as pool:
        process_submit_get(pool, TASKS // 10)
        result("pool_process_submit_get",
               statistics.median(process_submit_get(pool, TASKS) for _ in range(RUNS)), "us")
        data = list(range(1, ITEMS + 1))
        pool.map(identity, [1, 2, 3, 4])
        us = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            out = pool.map(identity, data)
            us.append((time.perf_counter() - t0) / ITEMS * 1e6)
            assert len(out) == ITEMS
        result("pool_map_item", statistics.median(us), "us")
    per = CPU_N // 8
    chunks = [((c - 1) * per + 1, c * per) for c in range(1, 9)]

    sums = []

    def timed(workers):
        """Wall time of the map, and the CPU time of the pool's processes
        (counted once they are reaped, at the end of the with block)."""
        c0 = os.times()
        with ctx.Pool(workers) as pool:
            pool.map(count, [(1, 10), (1, 10)], 1)
            t0 = time.perf_counter()
            sums.append(sum(pool.map(count, chunks, 1)))
            wall = time.perf_counter() - t0
        c1 = os.times()
        assert sums[-1] == sums[0], "pool_cpu_speedup: the runs disagree"
        return wall, (c1.children_user + c1.children_system
                      - c0.children_user - c0.children_system)

    ratios, cpus = [], []
    for _ in range(RUNS):
        t1, _c1 = timed(1)
        t2, c2 = timed(2)
        ratios.append(t1 / t2)
        cpus.append(c2 / t2)
    result("pool_cpu_speedup", statistics.median(ratios), "x")
    print("NOTE pool_cpu_speedup (Python): its 2-worker runs got %.2f CPUs "
          "(workers' CPU time / wall time); load average %.2f %.2f %.2f"
          % ((statistics.median(cpus),) + os.getloadavg()), flush=True)


if __name__ == "__main__":
    main()
