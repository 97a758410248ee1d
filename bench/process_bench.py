"""Python baseline for bench/process_bench.lua: start + join of a
multiprocessing.Process (fork start method, and spawn as a Python-only row),
and the throughput of small items from a child process to its parent through
a multiprocessing.Queue and a multiprocessing.Pipe. Prints RESULT lines for
bench/run; docs/PROCESSES.md says what each one means."""

import multiprocessing as mp
import os
import statistics
import time

QUICK = os.environ.get("BENCH_QUICK") == "1"
SPAWN_N = 50 if QUICK else 400
SPAWN_METHOD_N = 3 if QUICK else 10
ITEMS = 20_000 if QUICK else 200_000
RUNS = 1 if QUICK else 3


def result(metric, value, unit):
    print("RESULT %s %.6g %s" % (metric, value, unit), flush=True)


def noop():
    pass


def start_join(ctx, n, metric):
    for _ in range(min(20, n)):  # warm-up
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        ms.append((time.perf_counter() - t0) * 1e3)
    result(metric, statistics.median(ms), "ms")


def produce_queue(q, go, n):
    go.wait()
    for i in range(1, n + 1):
        q.put(i)
    q.put(0)


def produce_pipe(w, go, n):
    go.wait()
    for i in range(1, n + 1):
        w.send(i)
    w.send(0)


def throughput(ctx, kind, n):
    go = ctx.Event()
    if kind == "queue":
        chan = ctx.Queue()
        p = ctx.Process(target=produce_queue, args=(chan, go, n))
        recv = chan.get
    else:
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=produce_pipe, args=(w, go, n))
        recv = r.recv
    p.start()
    t0 = time.perf_counter()
    go.set()
    count = 0
    while recv() != 0:
        count += 1
    dt = time.perf_counter() - t0
    assert count == n
    p.join()
    return n / dt


def main():
    fork = mp.get_context("fork")
    start_join(fork, SPAWN_N, "process_start_join")
    start_join(mp.get_context("spawn"), SPAWN_METHOD_N, "process_start_join_spawn")
    for kind in ("queue", "pipe"):
        rates = [throughput(fork, kind, ITEMS) for _ in range(RUNS)]
        result("process_%s_rate" % kind, statistics.median(rates), "items/s")


if __name__ == "__main__":
    main()
