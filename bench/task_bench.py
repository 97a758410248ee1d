"""Python baseline for bench/task_bench.lua: the same four measurements with
asyncio (a task switch, the memory of an idle task, a task-to-thread
ping-pong through call_soon_threadsafe, a TCP echo with asyncio streams).
Prints RESULT lines for bench/run; see docs/TASKS.md."""

import asyncio
import gc
import os
import queue
import threading
import time

QUICK = os.environ.get("BENCH_QUICK") == "1"
NTASKS, NSWITCH = (10_000, 10) if QUICK else (100_000, 10)
NIDLE = 10_000 if QUICK else 100_000
NPING = 2_000 if QUICK else 20_000
NCONN, NREQ = (100, 10) if QUICK else (1000, 20)


def result(metric, value, unit):
    print("RESULT %s %.6g %s" % (metric, value, unit), flush=True)


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def switch():
    async def body():
        for _ in range(NSWITCH):
            await asyncio.sleep(0)
    t0 = time.perf_counter()
    ts = [asyncio.create_task(body()) for _ in range(NTASKS)]
    t1 = time.perf_counter()
    for t in ts:
        await t
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1


async def idle(before):
    ts = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(NIDLE)]
    await asyncio.sleep(0.01)
    after = rss_kib()
    for t in ts:
        t.cancel()
    await asyncio.gather(*ts, return_exceptions=True)
    return (after - before) * 1024 / NIDLE


async def pingpong():
    loop = asyncio.get_running_loop()
    to_thread = queue.Queue()
    back = asyncio.Queue()

    def worker():
        for _ in range(NPING):
            x = to_thread.get()
            loop.call_soon_threadsafe(back.put_nowait, x)

    th = threading.Thread(target=worker)
    th.start()
    t0 = time.perf_counter()
    for i in range(NPING):
        to_thread.put(i)
        await back.get()
    dt = time.perf_counter() - t0
    th.join()
    return dt / NPING


async def echo():
    async def handle(reader, writer):
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    port = srv.sockets[0].getsockname()[1]

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(NREQ):
            writer.write(b"hello echo\n")
            await writer.drain()
            assert await reader.readline() == b"hello echo\n"
        writer.close()
        await writer.wait_closed()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(NCONN)))
    dt = time.perf_counter() - t0
    srv.close()
    await srv.wait_closed()
    return NCONN * NREQ / dt


def main():
    before = rss_kib()
    result("task_idle_bytes", asyncio.run(idle(before)), "B")
    result("task_idle_count", NIDLE, "tasks")
    gc.collect()  # as the Lua side does: no earlier row's garbage in this one
    total, run = asyncio.run(switch())
    result("task_switch_us", total / (NTASKS * NSWITCH) * 1e6, "us")
    result("task_switch_run_us", run / (NTASKS * NSWITCH) * 1e6, "us")
    result("task_thread_roundtrip_us", asyncio.run(pingpong()) * 1e6, "us")
    result("tcp_echo_rps", asyncio.run(echo()), "req/s")


if __name__ == "__main__":
    main()
