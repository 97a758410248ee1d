"""Python baseline for bench/thread_bench.lua: the same three measurements
with threading.Thread. Prints RESULT lines for bench/run; see
docs/BENCHMARKS.md for what each one means."""

import os
import statistics
import threading
import time

QUICK = os.environ.get("BENCH_QUICK") == "1"
SPAWN_BATCHES, SPAWN_ITERS = (3, 200) if QUICK else (7, 2000)
MEM_BASE, MEM_MORE = (20, 50) if QUICK else (50, 200)
# Python's loop is slower than Lua's: fewer iterations keep the run short
# (the speed-up does not depend on the size once it dwarfs a thread start).
CPU_BATCHES, CPU_HALF = (3, 300_000) if QUICK else (5, 3_000_000)
MANY = 2000 if QUICK else 20000


def result(metric, value, unit):
    print("RESULT %s %.6g %s" % (metric, value, unit), flush=True)


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


# ---- memory: RSS growth per parked thread -------------------------------

def parked(gate, ready):
    ready.release()
    gate.wait()


def thread_memory():
    gate, ready = threading.Event(), threading.Semaphore(0)
    threads = []

    def start(n):
        for _ in range(n):
            t = threading.Thread(target=parked, args=(gate, ready))
            t.start()
            threads.append(t)
        for _ in range(n):
            ready.acquire()
        time.sleep(0.05)  # let the last ones reach gate.wait()

    # Measure the growth from MEM_BASE to MEM_BASE + MEM_MORE live threads,
    # so one-time costs of the first threads do not count.
    start(MEM_BASE)
    before = rss_kib()
    start(MEM_MORE)
    after = rss_kib()
    gate.set()
    for t in threads:
        t.join()
    result("thread_rss_per_thread", (after - before) / MEM_MORE, "KiB")


# ---- spawn + join ---------------------------------------------------------

def noop():
    pass


def spawn_join():
    for _ in range(SPAWN_ITERS // 4):  # warm-up
        t = threading.Thread(target=noop)
        t.start()
        t.join()
    per = []
    for _ in range(SPAWN_BATCHES):
        t0 = time.perf_counter()
        for _ in range(SPAWN_ITERS):
            t = threading.Thread(target=noop)
            t.start()
            t.join()
        per.append((time.perf_counter() - t0) / SPAWN_ITERS * 1e6)
    result("thread_spawn_join", statistics.median(per), "us")


# ---- CPU-bound loop: 2 threads vs 1 ---------------------------------------

def work(n, out, i):
    x = 0
    for k in range(1, n + 1):
        x = x + k % 7
    out[i] = x


def both_halves(n, out, i):
    work(n, out, i)
    work(n, out, i + 1)


def cpu_speedup():
    expect = sum(k % 7 for k in range(1, CPU_HALF + 1))
    ratios, loop_ns = [], []
    for _ in range(CPU_BATCHES):
        out = [None, None]
        t0 = time.perf_counter()
        t = threading.Thread(target=both_halves, args=(CPU_HALF, out, 0))
        t.start()
        t.join()
        serial = time.perf_counter() - t0
        assert out == [expect, expect], out

        out = [None, None]
        t0 = time.perf_counter()
        ts = [threading.Thread(target=work, args=(CPU_HALF, out, i))
              for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        parallel = time.perf_counter() - t0
        assert out == [expect, expect], out

        ratios.append(serial / parallel)
        loop_ns.append(serial / (2 * CPU_HALF) * 1e9)
    print("NOTE thread_cpu_speedup runs 2 threads at once: it needs 2 idle CPUs"
          " (this machine has %d online)" % os.cpu_count())
    result("thread_cpu_speedup", statistics.median(ratios), "x")
    result("thread_cpu_loop", statistics.median(loop_ns), "ns")


# ---- many at once: 20,000 parked threads ---------------------------------

def many_parked():
    gate, ready = threading.Event(), threading.Semaphore(0)
    threads = []
    before = rss_kib()
    t0 = time.perf_counter()
    for _ in range(MANY):
        t = threading.Thread(target=parked, args=(gate, ready))
        t.start()
        threads.append(t)
    for _ in range(MANY):
        ready.acquire()
    started = time.perf_counter() - t0
    after = rss_kib()
    gate.set()
    for t in threads:
        t.join()
    result("thread_many_start", started / MANY * 1e6, "us")
    result("thread_many_rss", (after - before) / MANY, "KiB")
    print("NOTE thread_many_*: %d threads parked at once" % MANY)


if __name__ == "__main__":
    thread_memory()  # first: before any other thread has run
    spawn_join()
    cpu_speedup()
    many_parked()
