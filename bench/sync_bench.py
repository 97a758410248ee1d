"""Python baseline for bench/sync_bench.lua: the same measurements with
threading.Lock, RLock, Semaphore and `with`. Prints RESULT lines for
bench/run; see docs/SYNC.md for what each one means."""

import os
import statistics
import threading
import time

QUICK = os.environ.get("BENCH_QUICK") == "1"
BATCHES, N = (3, 100_000) if QUICK else (7, 1_000_000)
CONT_BATCHES, CONT_N = (3, 20_000) if QUICK else (5, 200_000)


def result(metric, value, unit):
    print("RESULT %s %.6g %s" % (metric, value, unit), flush=True)


def per_op(body):
    body(N // 10)  # warm up
    xs = []
    for _ in range(BATCHES):
        t0 = time.perf_counter()
        body(N)
        xs.append((time.perf_counter() - t0) / N * 1e9)
    return statistics.median(xs)


lock, rlock, sem = threading.Lock(), threading.RLock(), threading.Semaphore(1)


def lock_pair(n):
    for _ in range(n):
        lock.acquire()
        lock.release()


def rlock_pair(n):
    for _ in range(n):
        rlock.acquire()
        rlock.release()


def sem_pair(n):
    for _ in range(n):
        sem.acquire()
        sem.release()


def lock_with(n):
    for _ in range(n):
        with lock:
            pass


result("lock_pair_ns", per_op(lock_pair), "ns")
result("rlock_pair_ns", per_op(rlock_pair), "ns")
result("sem_pair_ns", per_op(sem_pair), "ns")
result("lock_with_ns", per_op(lock_with), "ns")
result("lock_hold_ns", per_op(lock_with), "ns")  # `with` is Python's guard


def contended():
    lk = threading.Lock()
    counter = [0]
    start = threading.Barrier(3)

    def worker(n):
        start.wait()
        for _ in range(n):
            lk.acquire()
            counter[0] += 1
            lk.release()

    ts = [threading.Thread(target=worker, args=(CONT_N,)) for _ in range(2)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    assert counter[0] == 2 * CONT_N
    return 2 * CONT_N / dt / 1000


result("lock_contended_2t", statistics.median(contended() for _ in range(CONT_BATCHES)), "kops/s")
