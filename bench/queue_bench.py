"""Python baseline for bench/queue_bench.lua: the same four measurements
with queue.Queue between threads, a multiprocessing.Queue for the 1 MiB
items (it copies them, as conc does) and a multiprocessing Manager dict for
the shared table. Prints RESULT lines for bench/run; see docs/QUEUES.md."""

import multiprocessing
import os
import queue
import statistics
import threading
import time

QUICK = os.environ.get("BENCH_QUICK") == "1"
BATCHES = 3 if QUICK else 5
N_ITEMS = 20_000 if QUICK else 200_000
N_PING = 2_000 if QUICK else 20_000
N_BIG = 50 if QUICK else 500
N_SHARED = 2_000 if QUICK else 20_000


def result(metric, value, unit):
    print("RESULT %s %.6g %s" % (metric, value, unit), flush=True)


def over_batches(batch):
    return statistics.median(batch() for _ in range(BATCHES))


# ---- one way ---------------------------------------------------------------

def producer(q, n):
    for i in range(n):
        q.put(i)


def throughput():
    q = queue.Queue()
    t0 = time.perf_counter()
    t = threading.Thread(target=producer, args=(q, N_ITEMS))
    t.start()
    for _ in range(N_ITEMS):
        q.get()
    dt = time.perf_counter() - t0
    t.join()
    return N_ITEMS / dt / 1e6


# ---- ping-pong -------------------------------------------------------------

def echo(ping, pong, n):
    for _ in range(n):
        pong.put(ping.get())


def pingpong():
    ping, pong = queue.Queue(), queue.Queue()
    t = threading.Thread(target=echo, args=(ping, pong, N_PING))
    t.start()
    ping.put(0)
    pong.get()
    t0 = time.perf_counter()
    for i in range(1, N_PING):
        ping.put(i)
        pong.get()
    dt = time.perf_counter() - t0
    t.join()
    return dt / (N_PING - 1) * 1e6


# ---- 1 MiB items between processes -----------------------------------------

def big_producer(q, n, item):
    for _ in range(n):
        q.put(item)


def big_items():
    item = b"0123456789abcdef" * 65536
    q = multiprocessing.Queue(8)
    t0 = time.perf_counter()
    p = multiprocessing.Process(target=big_producer, args=(q, N_BIG, item))
    p.start()
    for _ in range(N_BIG):
        q.get()
    dt = time.perf_counter() - t0
    p.join()
    return N_BIG * len(item) / dt / 1e9


# ---- Manager dict from two threads -----------------------------------------

def hammer(d, n, key):
    for i in range(n // 2):
        d[key] = i
        d[key]


def shared_ops(mgr):
    d = mgr.dict()
    t0 = time.perf_counter()
    t = threading.Thread(target=hammer, args=(d, N_SHARED, "a"))
    t.start()
    hammer(d, N_SHARED, "b")
    t.join()
    return 2 * N_SHARED / (time.perf_counter() - t0) / 1e6


def main():
    result("queue_throughput", over_batches(throughput), "M items/s")
    result("queue_pingpong", over_batches(pingpong), "us")
    result("queue_1mb", over_batches(big_items), "GB/s")
    with multiprocessing.Manager() as mgr:
        result("shared_ops", over_batches(lambda: shared_ops(mgr)), "M ops/s")


if __name__ == "__main__":
    main()
