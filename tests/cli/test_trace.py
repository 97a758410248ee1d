"""Seeing what happens (issue 12): --trace, --timeline, conc.dump and Ctrl-\\,
--lock-order, driven from outside (standard library only).

Orderings come from the scripts' own waits (joins, events, queues) and from
polling conc.dump() until every thread is parked: never from sleeps.
"""
import json
import re
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import CONCLUA, TIMEOUT, CliTestCase, clean_env, needs_signals  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def start(test, args):
    """conclua in the background with pipes on stdin, stdout and stderr."""
    return subprocess.Popen(["conclua"] + args, executable=CONCLUA, cwd=test.dir,
                            env=clean_env(HOME=test.dir), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def sigint_pending(pid):
    """Whether a SIGINT sent to pid waits to be delivered."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("SigPnd:", "ShdPnd:")) and \
                    int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)):
                return True
    return False


def check_trace(test, path):
    """Parses the trace and checks the invariants of issue 12: B/E matched per
    track, timestamps monotonic per track, every flow start has its end.
    Returns (events, {(pid, tid): name})."""
    with open(path) as f:
        data = json.load(f)
    evs = data["traceEvents"]
    names, depth, last, flows = {}, {}, {}, {}
    for e in evs:
        key = (e["pid"], e["tid"])
        if e["ph"] == "M":
            if e["name"] == "thread_name":
                names[key] = e["args"]["name"]
            continue
        test.assertGreaterEqual(e["ts"], last.get(key, 0), ("not monotonic", e))
        last[key] = e["ts"]
        if e["ph"] == "B":
            depth[key] = depth.get(key, 0) + 1
        elif e["ph"] == "E":
            test.assertGreater(depth.get(key, 0), 0, ("E without B", e))
            depth[key] -= 1
        elif e["ph"] in "sf":
            flows.setdefault(e["id"], []).append(e["ph"])
    test.assertEqual({k: v for k, v in depth.items() if v}, {}, "B without E")
    for fid, phs in flows.items():
        test.assertEqual(sorted(phs), ["f", "s"], ("flow not matched", fid))
    return evs, names


EVERYTHING = r"""
local q = conc.queue()
local lock = conc.lock("L")
local t = conc.thread({name = "producer"}, function()
  -- held across a sleep: a hold shorter than 5 us with nothing inside is
  -- left out of the trace (counted in otherData.short_holds_left_out)
  for i = 1, 3 do lock:with(function() conc.sleep(0.001); q:put(i) end) end
end)
local mine = conc.lock("C")
local c = conc.thread({name = "consumer"}, function()
  local s = 0
  for i = 1, 3 do s = s + q:get() end
  mine:with(function() end) -- a lane even if no get had to wait
  local quick = conc.lock("quick")
  for _ = 1, 200 do quick:acquire(); quick:release() end -- a run of takes
  return s
end)
t:join()
assert(select(2, c:join()) == 6)
local p = conc.process({name = "child"}, function()
  local l2 = conc.lock("child lock")
  l2:with(function() conc.sleep(0.001) end)
  return 7
end)
assert(select(2, p:join()) == 7)
conc.run(function()
  local ev = conc.event()
  local a = conc.task(function() ev:wait(); return 1 end) -- runs first: parks
  local b = conc.task(function() conc.sleep(0.001); ev:set(); return 2 end)
  return conc.gather(a, b)
end)
do
  local pool <close> = conc.pool(2, {name = "workers"})
  local f = pool:submit(function(x) conc.sleep(0.001); return x * 2 end, 21)
  assert(f:get() == 42)
end
local twice = conc.lock("twice") -- a deadlock found (and caught): an instant
twice:acquire()
assert(not pcall(twice.acquire, twice))
twice:release()
print("done")
"""


class TraceTest(CliTestCase):
    def trace(self, script, *extra, name="t.json", input=None, env=None):
        path = self.write("s.lua", script)
        out = os.path.join(self.dir, name)
        r = self.run_conclua(["--trace", out] + list(extra) + [path], input=input,
                             **({"env": env} if env else {}))
        return r, out

    def test_trace_of_threads_processes_tasks_pools(self):
        r, out = self.trace(EVERYTHING)
        self.assertEqual((r.rc, r.out, r.err), (0, "done\n", ""))
        evs, names = check_trace(self, out)
        lanes = set(names.values())
        for who in ("main", "producer", "consumer"):
            self.assertIn(who, lanes)
        self.assertTrue(any(n.startswith("task-") for n in lanes), lanes)
        # the child process's events land in the same file, under its pid
        pids = {e["pid"] for e in evs}
        self.assertGreaterEqual(len(pids), 2, pids)
        procs = [e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "process_name"]
        self.assertTrue(any("child" in p for p in procs), procs)
        waits = [e for e in evs if e["ph"] == "B" and e.get("cat") == "wait"]
        self.assertTrue(any(e["args"]["kind"] == "join" for e in waits), waits)
        # every put of the three items has its arrow to the get that took it
        puts = [e for e in evs if e["ph"] == "s"]
        self.assertGreaterEqual(len(puts), 3, "no flow from a queue put to its get")
        gets = [e for e in evs if e["ph"] == "i" and e.get("cat") == "queue"
                and e["name"].startswith("get ")]
        self.assertGreaterEqual(len(gets), 3)
        holds = [e["name"] for e in evs if e["ph"] == "B" and e.get("cat") == "hold"]
        self.assertIn("hold lock 'L'", holds)
        self.assertIn("hold lock 'child lock'", holds)
        # pool workers appear as lanes of their own
        self.assertTrue(any("workers" in n for n in lanes), lanes)

    def test_a_lock_taken_in_a_loop_is_one_span_of_takes(self):
        # Quick takes in a row are drawn as spans "took lock 'L' N times";
        # none is lost (takes + holds + left out = every take), a long take
        # after the run is still covered, two threads' runs of one lock may
        # overlap, and a hold across a wait is a hold span as before.
        r, out = self.trace(r"""
local l = conc.lock("L")
for _ = 1, 20000 do l:acquire(); l:release() end
l:acquire() -- a take of 5 ms right after the run, with nothing recorded in it
local t0 = conc.now()
while conc.now() - t0 < 0.005 do end
l:release()
local s = conc.lock("S")
s:acquire(); conc.sleep(0.001); s:release()
local shared = conc.lock("both")
local function hammer(lk) for _ = 1, 5000 do lk:acquire(); lk:release() end end
local a = conc.thread({name = "ham-a"}, hammer, shared)
local b = conc.thread({name = "ham-b"}, hammer, shared)
a:join(); b:join()
print("done")
""")
        self.assertEqual((r.rc, r.out, r.err), (0, "done\n", ""))
        evs, names = check_trace(self, out)
        with open(out) as f:
            left_out = json.load(f)["otherData"]["short_holds_left_out"]
        spans, open_b = {}, {}
        for e in evs:
            key = (e["pid"], e["tid"])
            if e["ph"] == "B":
                open_b.setdefault(key, []).append(e)
            elif e["ph"] == "E":
                b = open_b[key].pop()
                spans.setdefault(b["args"].get("object") if "args" in b else None, []).append(
                    (b.get("cat"), b["name"], b["args"].get("takes", 0) if "args" in b else 0,
                     e["ts"] - b["ts"]))
        def tally(obj):
            got = spans.get(obj, [])
            takes = sum(n for cat, _, n, _ in got if cat == "takes")
            holds = sum(1 for cat, _, _, _ in got if cat == "hold")
            return got, takes, holds
        got, takes, holds = tally("lock 'L'")
        self.assertTrue(any(cat == "takes" and re.fullmatch(r"took lock 'L' \d+ times", name)
                            for cat, name, _, _ in got), got[:5])
        # a take still on when a run is written out is also a hold span:
        # counted once in the run, perhaps again as a hold
        self.assertLessEqual(takes, 20001)
        self.assertGreaterEqual(takes + holds + left_out, 20001)
        self.assertGreaterEqual(max(d for _, _, _, d in got), 5000, "the 5 ms take is lost")
        got, takes, holds = tally("lock 'both'")
        self.assertTrue(any(cat == "takes" for cat, _, _, _ in got), got[:5])
        self.assertLessEqual(takes, 10000)
        self.assertGreaterEqual(takes + holds + left_out, 10000)
        self.assertIn("hold lock 'S'", [name for _, name, _, _ in spans.get("lock 'S'", [])])

    # A process pool's result block is often one the arena's allocator
    # handed back from the pool's monitor thread and then to the worker
    # process: TSan sees the monitor's free and the main thread's read, not
    # the child process between them, and reports a race (without --trace
    # too; reported to the pool's owner).
    @unittest.skipIf(os.environ.get("CONCLUA_TSAN") == "1",
                     "TSan cannot follow arena blocks through a worker process")
    def test_process_pool_workers_are_processes(self):
        r, out = self.trace("""
local procs <close> = conc.pool(1, {name = "procs", processes = true})
assert(procs:submit(function() conc.sleep(0.001); return 1 end):get() == 1)
""")
        self.assertEqual((r.rc, r.err), (0, ""))
        evs, names = check_trace(self, out)
        self.assertIn("procs worker 1", set(names.values()))
        procs = [e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "process_name"]
        self.assertTrue(any("'procs worker 1'" in p for p in procs), procs)

    def assert_runs_from_start_to_end(self, name):
        """A thread called `name` that never blocks has one lane, with one
        running span from when it is made (CC_EV_START) to when its actor is
        freed (CC_EV_END), not to the end of the trace."""
        r, out = self.trace("""
local t = conc.thread({name = %r}, function()
  local s = 0
  for i = 1, 1000 do s = s + i end
  return s
end)
assert(select(2, t:join()) == 500500)
""" % name)
        self.assertEqual((r.rc, r.err), (0, ""))
        evs, names = check_trace(self, out)
        lane = [k for k, v in names.items() if v == name]
        self.assertEqual(len(lane), 1, names)
        run = [e for e in evs if (e["pid"], e["tid"]) == lane[0] and e["ph"] in "BE"]
        self.assertEqual([(e["ph"], e.get("cat")) for e in run], [("B", "run"), ("E", None)], run)
        self.assertNotIn("closed", run[1].get("args", {}))

    def test_a_thread_that_never_blocks_has_a_lane(self):
        self.assert_runs_from_start_to_end("quiet")

    def test_main_runs_until_the_script_ends(self):
        # main's running span is still open when the trace closes: it ends
        # then (after the busy loop), not at main's last recorded event
        r, out = self.trace("""
conc.sleep(0.001)
local t0 = conc.now()
while conc.now() - t0 < 0.05 do end
""")
        self.assertEqual((r.rc, r.err), (0, ""))
        evs, names = check_trace(self, out)
        lane = [k for k, v in names.items() if v == "main"]
        self.assertEqual(len(lane), 1, names)
        mine = [e for e in evs if (e["pid"], e["tid"]) == lane[0] and e["ph"] in "BE"]
        slept = [e for e in mine if e["ph"] == "B" and e.get("cat") == "wait"]
        self.assertEqual(len(slept), 1, mine)
        end_of_sleep = mine[mine.index(slept[0]) + 1]
        self.assertEqual(mine[-1]["args"].get("closed"), "at the end of the trace", mine)
        self.assertGreaterEqual(mine[-1]["ts"] - end_of_sleep["ts"], 45000, mine)

    def test_runtime_threads_have_no_empty_lane(self):
        # the first process starts the reaper thread ("conclua reaper"): it
        # runs no script and records nothing here, so it has no lane
        r, out = self.trace("""
local p = conc.process({name = "kid"}, function() return 1 end)
assert(select(2, p:join()) == 1)
""")
        self.assertEqual((r.rc, r.err), (0, ""))
        evs, names = check_trace(self, out)
        self.assertIn("kid", names.values())
        self.assertFalse([n for n in names.values() if n.startswith("conclua ")], names)

    def test_a_script_thread_named_like_the_runtime_has_its_lane(self):
        # the runtime's own threads are told by their actor's kind, not by
        # their name: a script's thread called "conclua worker" runs a
        # script and has its running span from start to end
        self.assert_runs_from_start_to_end("conclua worker")

    def test_the_end_waits_for_the_threads_as_a_wait(self):
        # after the script's last statement (the put) main waits for the
        # thread "late": a join wait on main's lane. The thread ends only
        # once conc.dump() shows main in that wait (bounded: 10 s, after
        # which the wait span is missing and the test fails), so the wait
        # parks for sure; it begins after the put (main's own order) and
        # ends after the thread's end (the thread's end wakes it).
        r, out = self.trace("""
local q = conc.queue("go")
conc.thread({name = "late"}, function()
  q:get()
  local t0 = conc.now()
  while conc.now() - t0 < 10 do
    if conc.dump():find("thread 'main' %(pid %d+%): waiting %(join%)") then return end
  end
  error("main never waited for this thread")
end)
q:put(1)
""")
        self.assertEqual((r.rc, r.err), (0, ""))
        evs, names = check_trace(self, out)
        main = [k for k, v in names.items() if v == "main"]
        late = [k for k, v in names.items() if v == "late"]
        self.assertEqual((len(main), len(late)), (1, 1), names)
        mine = [e for e in evs if (e["pid"], e["tid"]) == main[0]]
        put = [e for e in mine if e["ph"] == "i" and e["name"] == "put queue 'go'"]
        self.assertEqual(len(put), 1, mine)
        spans = [e for e in mine if e["ph"] in "BE"]
        waits = [i for i, e in enumerate(spans)
                 if e["ph"] == "B" and e.get("cat") == "wait" and e["ts"] >= put[0]["ts"]]
        self.assertEqual(len(waits), 1, spans)
        begin, end = spans[waits[0]], spans[waits[0] + 1]
        self.assertEqual((begin["args"]["kind"], end["ph"]), ("join", "E"), spans)
        self.assertEqual(end["args"].get("result"), "ok", end)
        thread_end = [e for e in evs if (e["pid"], e["tid"]) == late[0] and e["ph"] == "E"
                      and e.get("cat") is None][-1]
        self.assertGreaterEqual(end["ts"], thread_end["ts"], (end, thread_end))
        # then main runs again until the trace closes
        self.assertEqual((spans[-1]["ph"], spans[-1]["args"].get("closed")),
                         ("E", "at the end of the trace"), spans)

    def test_trace_closes_while_a_thread_records(self):
        # a daemon thread still putting (and holding a lock across a wait)
        # when the script ends: the closer waits for no thread to be inside
        # an event, takes every buffer, and the file is whole
        r, out = self.trace("""
local q, l = conc.queue("work"), conc.lock("busy")
conc.thread({name = "busy", daemon = true}, function()
  local i = 0
  while true do
    i = i + 1
    q:put(i)
    l:acquire(); conc.sleep(0); l:release()
  end
end)
for _ = 1, 2000 do q:get() end
""")
        self.assertEqual((r.rc, r.err), (0, ""))
        evs, names = check_trace(self, out)
        self.assertIn("busy", names.values())
        gets = [e for e in evs if e["ph"] == "i" and e["name"] == "get queue 'work'"]
        self.assertEqual(len(gets), 2000)

    def test_timestamps_are_wall_time_with_either_clock(self):
        # records carry TSC ticks where the TSC is invariant, converted when
        # the trace closes; CONCLUA_TRACE_CLOCK=monotonic keeps to
        # clock_gettime. Either way 50 ms of running between two waits is
        # 50 ms in the trace. (Not a sleep's own span: its deadline is taken
        # before its wait's record, and a thread preempted in between shows
        # a shorter span.)
        for clock in (None, "monotonic"):
            with self.subTest(clock=clock):
                r, out = self.trace("""
local t0 = conc.now()
conc.sleep(0.001)
local ta = conc.now() -- after the first wait's end was recorded
while conc.now() - ta < 0.05 do end
local tb = conc.now() -- before the second wait's begin is recorded
conc.sleep(0.001)
local t1 = conc.now()
io.write(string.format("%.0f %.0f", (tb - ta) * 1e6, (t1 - t0) * 1e6))
""", env=clean_env(HOME=self.dir, CONCLUA_TRACE_CLOCK=clock))
                self.assertEqual(r.rc, 0, r.err)
                self.assertEqual(r.err, "")
                inner, outer = (int(x) for x in r.out.split())
                evs, names = check_trace(self, out)
                main = [k for k, v in names.items() if v == "main"]
                spans = [e for e in evs if (e["pid"], e["tid"]) == main[0] and e["ph"] in "BE"]
                waits = [i for i, e in enumerate(spans) if e.get("cat") == "wait"]
                self.assertEqual(len(waits), 2, spans)
                took = spans[waits[1]]["ts"] - spans[waits[0] + 1]["ts"]
                # the trace's running span holds what the script measured
                # inside it and lies within what it measured around it,
                # give or take 1% for the clocks' calibration
                self.assertGreaterEqual(took, inner * 0.99, (took, inner, spans))
                self.assertLessEqual(took, outer * 1.01, (took, outer))

    def test_deadlock_is_an_instant_naming_both_threads(self):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                              "scripts", "deadlock.lua")
        out = os.path.join(self.dir, "t.json")
        r = self.run_conclua(["--trace", out, script])
        self.assertEqual(r.rc, 1)
        self.assertIn("deadlock: thread 'cook", r.err)
        evs, names = check_trace(self, out)
        dl = [e for e in evs if e["ph"] == "i" and e["name"] == "deadlock"]
        self.assertEqual(len(dl), 1, dl)
        self.assertIn(names[(dl[0]["pid"], dl[0]["tid"])], ("cook1", "cook2"))
        detail = dl[0]["args"]["detail"]
        self.assertRegex(detail, r"^deadlock: thread 'cook[12]' waits for lock '(knife|pot)'")
        self.assertIn("thread 'cook1'", detail)
        self.assertIn("thread 'cook2'", detail)

    def test_fork_and_exit_are_instants(self):
        r, out = self.trace("""
local p = conc.process({name = "kid"}, function() return 1 end)
assert(select(2, p:join()) == 1)
local q = conc.process({name = "quitter"}, function() os.exit(3) end)
local ok, err = pcall(q.join, q)
assert(not ok and tostring(err):find("status 3"), err)
""")
        self.assertEqual((r.rc, r.err), (0, ""))
        evs, names = check_trace(self, out)
        main = [k for k, v in names.items() if v == "main"]
        self.assertEqual(len(main), 1, names)
        forks = [e for e in evs if e["ph"] == "i" and e["name"] == "fork"]
        self.assertEqual([(e["pid"], e["tid"]) for e in forks], main * 2)
        self.assertEqual([e["args"]["detail"] for e in forks], ["kid", "quitter"])
        exits = {names[(e["pid"], e["tid"])]: e for e in evs if e["ph"] == "i" and e["name"] == "exit"}
        self.assertEqual(set(exits), {"kid", "quitter"})  # cc_process_exit, os.exit
        for e in exits.values():
            self.assertNotEqual(e["pid"], main[0][0])
        # the parent's process name is its own: a child's lane is named under
        # the child's pid only
        pnames = {(e["pid"], e["args"]["name"]) for e in evs
                  if e["ph"] == "M" and e["name"] == "process_name"}
        self.assertEqual({n for p, n in pnames if p == main[0][0]},
                         {"main (pid %d)" % main[0][0]})

    def test_unwritable_path_fails_before_the_script(self):
        path = self.write("s.lua", "print('ran')")
        r = self.run_conclua(["--trace", os.path.join(self.dir, "no", "such", "t.json"), path])
        self.assertEqual((r.rc, r.out), (1, ""))
        self.assertRegex(r.err, r"^conclua: cannot write trace file '.*t\.json': No such file")
        r = self.run_conclua(["--timeline", self.dir, path])  # a directory
        self.assertEqual((r.rc, r.out), (1, ""))
        self.assertIn("cannot write trace file", r.err)

    def test_a_script_is_never_emptied_and_one_file_is_not_two(self):
        # `conclua --trace s.lua` (the trace's file forgotten) used to empty
        # the script; --trace and --timeline to one file kept the page only
        path = self.write("s.lua", "print('ran')")
        r = self.run_conclua(["--trace", path])
        self.assertEqual((r.rc, r.out), (1, ""))
        self.assertIn("will not overwrite the Lua file", r.err)
        with open(path) as f:
            self.assertEqual(f.read(), "print('ran')")
        one = os.path.join(self.dir, "t.json")
        r = self.run_conclua(["--trace", one, "--timeline", one, path])
        self.assertEqual((r.rc, r.out), (1, ""))
        self.assertIn("the trace and the timeline need two files", r.err)

    def test_a_trace_that_cannot_be_written_is_exit_status_1(self):
        path = self.write("s.lua", "print('ran')")
        r = self.run_conclua(["--trace", os.path.join(self.dir, "t.json"), "--timeline",
                              "/dev/full", path])
        self.assertEqual((r.rc, r.out), (1, "ran\n"))
        self.assertIn("cannot write trace file '/dev/full': No space left on device", r.err)
        check_trace(self, os.path.join(self.dir, "t.json"))  # the other file is written

    def test_error_exit_and_os_exit_leave_a_valid_file(self):
        body = ("local l = conc.lock('held')\nl:acquire()\n"
                "local t = conc.thread(function() return l:acquire(5) end)\n")
        r, out = self.trace(body + "error('boom')\n")
        self.assertEqual(r.rc, 1)
        self.assertIn("boom", r.err)
        check_trace(self, out)
        r, out = self.trace(body + "l:release()\nt:join()\nos.exit(3)\n")
        self.assertEqual(r.rc, 3)
        evs, _ = check_trace(self, out)
        self.assertTrue(any(e.get("name") == "hold lock 'held'" for e in evs))

    def test_interrupted_script_leaves_a_valid_file(self):
        path = self.write("s.lua", "local e = conc.event()\nprint('ready')\nio.stdout:flush()\n"
                                   "e:wait()\n")
        out = os.path.join(self.dir, "t.json")
        p = start(self, ["--trace", out, path])
        try:
            self.assertEqual(p.stdout.readline(), b"ready\n")
            # ready is printed before the wait: poll until the trace's
            # observer would see it parked is not possible from outside, so
            # interrupt either way: both paths must leave a valid file
            p.send_signal(signal.SIGINT)
            err = p.communicate(timeout=TIMEOUT)[1].decode()
        finally:
            if p.poll() is None:
                p.kill()
        self.assertEqual(p.returncode, 1)
        self.assertIn("interrupted!", err)
        check_trace(self, out)

    @needs_signals
    def test_second_ctrl_c_in_a_c_call_still_writes_the_file(self):
        # The first Ctrl-C is not seen (the main thread is in string.find,
        # C code that backtracks for ever); the second used to kill at
        # once and leave the file empty. The thread says "ready" once main
        # is a few instructions from the find; if the first Ctrl-C came
        # before it got there (the chunk then ends with "interrupted!"),
        # the run is tried again (nothing outside can see main enter C).
        path = self.write("c.lua", """
local go = conc.event()
local l = conc.lock("x")
local t = conc.thread({name = "announcer", daemon = true}, function()
  go:wait()
  l:acquire(); l:release()
  conc.sleep(0.05) -- fewer tries on a busy machine; the tries decide
  print("ready")
  io.stdout:flush()
end)
local s = ("a"):rep(5000)
go:set()
s:find(".-.-.-.-b")
""")
        out = os.path.join(self.dir, "t.json")
        for attempt in range(10):
            p = start(self, ["--trace", out, path])
            try:
                self.assertEqual(p.stdout.readline(), b"ready\n")
                p.send_signal(signal.SIGINT)
                while sigint_pending(p.pid):
                    time.sleep(0.001)
                p.send_signal(signal.SIGINT)
                err = p.communicate(timeout=TIMEOUT)[1].decode()
            finally:
                if p.poll() is None:
                    p.kill()
            if p.returncode != 1 or "interrupted!" not in err:
                break
        self.assertEqual(p.returncode, -signal.SIGINT, err)
        self.assertIn("interrupted again: writing the trace files", err)
        evs, names = check_trace(self, out)
        self.assertIn("announcer", names.values())
        self.assertIn("main", names.values())
        self.assertTrue(any(e["ph"] == "B" and e.get("name") == "running" for e in evs), evs)

    @unittest.skipIf(CHROMIUM is None, "chromium is not installed: the timeline page is not "
                     "checked in a browser (.ci/deps installs it)")
    def test_timeline_in_headless_chromium(self):
        path = self.write("s.lua", EVERYTHING)
        html = os.path.join(self.dir, "t.html")
        r = self.run_conclua(["--timeline", html, path])
        self.assertEqual((r.rc, r.err), (0, ""))
        with open(html) as f:
            page = f.read()
        # self-contained: no network, no external script, style or font
        for bad in ("http://", "https://", "<link", "src=", "@import", "url("):
            self.assertNotIn(bad, page.replace('xmlns="http://www.w3.org/2000/svg"', "")
                             .replace('"http://www.w3.org/2000/svg"', ""))
        prof = tempfile.mkdtemp(prefix="conclua-chromium-")
        try:
            dom = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--user-data-dir=" + prof,
                 "--window-size=1200,800", "--dump-dom", "file://" + html],
                capture_output=True, timeout=90).stdout.decode()
        finally:
            shutil.rmtree(prof, ignore_errors=True)
        self.assertIn('data-drawn="yes"', dom)
        lanes = [seg.split('"', 1)[0] for seg in dom.split('<g class="lane" data-name="')[1:]]
        for who in ("main", "producer", "consumer"):
            self.assertIn(who, lanes)
        self.assertTrue(any(n.startswith("task-") for n in lanes), lanes)
        self.assertIn('class="wait"', dom)
        self.assertIn('class="hold"', dom)
        self.assertIn('class="takes"', dom)  # the consumer's run of takes of lock 'quick'
        self.assertIn('class="flow"', dom)  # put -> get arrows
        self.assertTrue("data-what=\"lock 'L'\"" in dom, "no hold of lock 'L' drawn")
        self.assertIn('class="tick deadlock"', dom)  # drawn apart from the queue's ticks


BLOCKED = r"""
local lock = conc.lock("the lock")
local sem = conc.semaphore(0)
local ev = conc.event()
local bar = conc.barrier(2)
local q = conc.queue()
local cond = conc.condition()
local gate = conc.event()
lock:acquire()
local ts = {
  conc.thread({name = "on-lock"}, function() lock:acquire(); lock:release() end),
  conc.thread({name = "on-sem"}, function() sem:acquire() end),
  conc.thread({name = "on-event"}, function() ev:wait() end),
  conc.thread({name = "on-barrier"}, function() bar:wait() end),
  conc.thread({name = "on-queue"}, function() return q:get() end),
  conc.thread({name = "on-cond"}, function() cond:with(function() cond:wait() end) end),
  conc.thread({name = "on-join"}, function() gate:wait() end),
}
local joiner = conc.thread({name = "joiner"}, function() ts[7]:join() end)
local pa, pb = conc.pipe()
local piper = conc.thread({name = "on-pipe"}, function() return pb:recv() end)
local sleeper = conc.thread({name = "on-sleep", daemon = true}, function() conc.sleep(600) end)
local tev, pev = conc.event(), conc.event()
local looper = conc.thread({name = "looper"}, function(tev)
  conc.run(function() conc.task(function() tev:wait() end):await() end)
end, tev)
local wpool = conc.pool(1, {name = "wpool"})
local fut = wpool:submit(function(e) e:wait() end, pev)
local names = {"on%-lock", "on%-sem", "on%-event", "on%-barrier", "on%-queue", "on%-cond",
               "on%-join", "joiner", "on%-pipe", "on%-sleep", "task%-%d+", "wpool worker 1"}
local d
for _ = 1, 20000 do
  d = conc.dump()
  local all = true
  for _, n in ipairs(names) do
    if not d:find("'" .. n .. "' %(pid %d+%): waiting") then
      all = false
    end
  end
  if all then break end
  conc.sleep(0.001)
end
io.write(d)
lock:release(); sem:release(); ev:set(); bar:wait(); q:put(1)
cond:with(function() cond:notify_all() end)
gate:set()
pa:send("hi")
tev:set()
pev:set()
for _, t in ipairs(ts) do t:join() end
joiner:join()
piper:join()
looper:join()
fut:get()
wpool:close()
wpool:join()
"""


TASKS_PARKED = """
conc.run(function()
  local ev, go, slept = conc.event(), conc.event(), conc.event()
  local waiter = conc.task(function() ev:wait() end)
  local sleeper = conc.task(function()
    go:wait() -- a task gets its own actor when it first blocks
    slept:set()
    conc.sleep(60)
  end)
  -- tasks run in order, each until it parks: waiter and sleeper park, this
  -- one sets go and parks, the sleeper goes to sleep, this one dumps
  local dumper = conc.task(function()
    go:set()
    slept:wait()
    io.write(conc.dump())
    ev:set()
    sleeper:cancel()
  end)
  conc.gather(waiter, dumper)
  assert(not pcall(conc.gather, sleeper))
end)
"""

# Tasks with no actor (they never blocked on a primitive) in the caller's
# own loop: tasks run in order, each until it suspends, so a and b sleep and
# the root task awaits a when c dumps; r is ready (made by c, not started).
OWN_LOOP = """
conc.run(function()
  local a = conc.task(function() conc.sleep(60) end)
  local b = conc.task(function() conc.sleep(60) end)
  local c = conc.task(function()
    local r = conc.task(function() end)
    io.write(conc.dump())
    a:cancel()
    b:cancel()
  end)
  assert(not pcall(conc.gather, a, b, c))
end)
"""

# A thread idle in its event loop: its tasks sleep, await or park, and
# none runs, so it runs no hook; the dump wakes its loop to answer.
IDLE_LOOP = """
local started, done = conc.event(), conc.event()
local t = conc.thread({name = "looper"}, function(started, done)
  conc.run(function()
    local a = conc.task(function() conc.sleep(60) end)
    local b = conc.task(function() done:wait() end)
    started:set()
    conc.gather(b)
  end)
end, started, done)
started:wait()
local d, deadline = nil, os.time() + 10
repeat
  d = conc.dump()
  local seen = d:find("'looper' %(pid %d+%): waiting in its event loop")
    and d:find("in thread 'looper'%): sleeping") and d:find("conc.run's task%): awaiting")
    and d:find("%(pid %d+%): waiting %(event%)")
  if not seen then conc.sleep(0.001) end
until seen or os.time() > deadline
io.write(d)
done:set()
t:join()
"""

SLEEP_ONLY = """
conc.run(function()
  conc.gather(conc.task(function() conc.sleep(0.001) end))
end)
"""


SPINNING_TASK = r"""
local started, stop = conc.event(), conc.event()
local t = conc.thread({name = "looper"}, function() conc.run(function()
  local spinner = conc.task(function()
    started:set()
    local n = 0
    while not stop:is_set() do n = n + 1 end
  end)
  conc.gather(spinner)
end) end)
started:wait()
io.write(conc.dump())
stop:set()
t:join()
"""


def sleeping_task(thread, where):
    """conc.dump's block of a task of `thread`'s loop that sleeps, its
    traceback at `where` (file:line)."""
    return (r"\ntask 'task-\d+' \(pid \d+, in thread '%s'\): sleeping for \d+\.\d+ s, "
            r"\d+\.\d+ s left\n  stack traceback:\n\t[^\n]*%s: in function" % (thread, where))


def root_task(thread):
    """conc.dump's block of conc.run's task of `thread`, awaiting in gather."""
    return (r"\ntask 'task-\d+' \(pid \d+, in thread '%s', conc.run's task\): "
            r"awaiting task-\d+ \(conc.gather or task:await\) for \d+\.\d+ s\n"
            r"  stack traceback:\n\tconc.gather:\d+:" % thread)


class DumpTest(CliTestCase):
    def dump_of(self, name, script):
        """Runs script (written to name), which prints a dump; checks that
        it ended well and returns what it printed."""
        r = self.run_conclua([self.write(name, script)])
        self.assertEqual((r.rc, r.err), (0, ""), r)
        return r.out

    def test_parked_tasks_dump_their_own_line(self):
        # a task's wait site is its own file:line (not conc.run's), and a
        # task with an actor (it blocked before) dumps as sleeping
        d = self.dump_of("tasks.lua", TASKS_PARKED)
        self.assertRegex(d, r"thread 'task-\d+' \(pid \d+\): waiting \(event\) on "
                            r"event '[^']*tasks.lua:3'[^\n]*\n  stack traceback:\n"
                            r"\t[^\n]*tasks.lua:4: in function")
        self.assertRegex(d, r"thread 'task-\d+' \(pid \d+\): waiting \(sleep\) on sleep"
                            r"[^\n]*\n  stack traceback:\n\t[^\n]*tasks.lua:8: in function")
        # under --trace, a task that only sleeps has a lane with its sleep
        out = os.path.join(self.dir, "t.json")
        r = self.run_conclua(["--trace", out, self.write("sleep.lua", SLEEP_ONLY)])
        self.assertEqual((r.rc, r.err), (0, ""), r)
        evs, names = check_trace(self, out)
        sleeps = [e for e in evs if e["ph"] == "B" and e.get("cat") == "wait"
                  and e["args"]["kind"] == "sleep"]
        self.assertEqual(len(sleeps), 1, sleeps)
        self.assertTrue(names[(sleeps[0]["pid"], sleeps[0]["tid"])].startswith("task-"), names)

    def test_dump_names_each_primitive_and_the_line(self):
        d = self.dump_of("blocked.lua", BLOCKED)
        self.assertTrue(d.startswith("conc.dump (pid "), d)
        expect = {"on-lock": ("lock", "lock 'the lock'", 11),
                  "on-sem": ("semaphore", "semaphore '[^']*blocked.lua:3'", 12),
                  "on-event": ("event", "event '[^']*blocked.lua:4'", 13),
                  "on-barrier": ("barrier", "barrier '[^']*blocked.lua:5'", 14),
                  "on-queue": ("queue", "queue '[^']*blocked.lua:6'", 15),
                  "on-cond": ("condition", "condition '[^']*blocked.lua:7'", 16),
                  "on-join": ("event", "event '[^']*blocked.lua:8'", 17),
                  "joiner": ("join", "thread 'on-join'", 19),
                  # a pipe's end is a queue inside: the dump says so
                  "on-pipe": ("queue", "queue '[^']*blocked.lua:20'", 21),
                  "on-sleep": ("sleep", "sleep", 22)}
        blocks = {}
        for block in re.split(r"\n(?:thread|task|process) '", d)[1:]:
            blocks[block.split("'", 1)[0]] = block
        # the looper's task that waits has an actor (a "thread" block); its
        # root task, which awaits it, has none (a "task" block, not counted)
        tasks = [n for n in blocks if re.match(r"task-\d+$", n) and "waiting (" in blocks[n]]
        self.assertEqual(len(tasks), 1, d)
        self.assertRegex(d, r"\n(?:thread|task) '%s' \(pid \d+\): waiting \(event\) on event "
                            r"'[^']*blocked.lua:23' for" % tasks[0])
        self.assertRegex(d, r"\nthread 'wpool worker 1' \(pid \d+\): waiting \(event\) on event "
                            r"'[^']*blocked.lua:23' for")
        for name, (kind, obj, line) in expect.items():
            self.assertIn(name, blocks, d)
            b = blocks[name]
            self.assertRegex(b, r"^%s' \(pid \d+\): waiting \(%s\) on %s for \d+\.\d+ s"
                             % (name, kind, obj))
            self.assertIn("blocked.lua:%d:" % line, b, b)
        # main holds the lock and is running (it reads its own stack)
        main = blocks.get("main") or d.split("thread 'main'", 1)[1]
        self.assertIn("holds: lock 'the lock'", main)
        self.assertIn("blocked.lua:", main)

    def test_a_process_that_waits_names_the_object_and_its_line(self):
        # site records are in the arena: the parent reads the child's. The
        # second time the process is started from a task: the child runs
        # its function in the state, not in the task it was forked from.
        body = """local q = conc.queue()
local ready = conc.event()
local p = conc.process({name = "cook"}, function()
  ready:set()
  return q:get()
end)
ready:wait()
local d
-- (its state says waiting a moment before its record is written)
repeat d = conc.dump() until d:find("'cook' %(pid %d+%): waiting %(queue%) on queue '")
io.write(d)
q:put("soup")
assert(select(2, p:join()) == "soup")
"""
        for name, script in (("cook.lua", body), ("task.lua", "conc.run(function() " + body + "end)")):
            out = self.dump_of(name, script)
            self.assertRegex(out, r"\nprocess 'cook' \(pid \d+\): waiting \(queue\) on queue "
                                    r"'[^']*%s:1' for \d+\.\d+ s\n  stack traceback:\n"
                                    r"\t[^\n]*%s:5: in function" % (name, name))
            self.assertNotIn("reaper", out)  # the runtime's own thread is not the script's

    def test_tasks_without_an_actor_in_the_callers_loop(self):
        # tasks that only sleep, are ready or await (in conc.gather) are
        # listed with their state, since when, and their own traceback
        d = self.dump_of("own.lua", OWN_LOOP)
        for line in (3, 4):
            self.assertRegex(d, sleeping_task("main", "own.lua:%d" % line))
        self.assertRegex(d, root_task("main") + r"[^\n]*\n\t[^\n]*own.lua:11:")
        self.assertRegex(d, r"\ntask 'task-\d+' \(pid \d+, in thread 'main'\): "
                            r"ready \(not started yet\)\n")
        # the caller reads its own stack, once
        self.assertEqual(len(re.findall(r"\n\t[^\n]*own.lua:7:", d)), 1, d)

    def test_a_task_that_holds_a_lock_and_awaits_says_what_it_holds(self):
        d = self.dump_of("holds.lua", """
local l = conc.lock("pot")
conc.run(function()
  local release = conc.event()
  local b = conc.task(function() release:wait() end)
  local a = conc.task(function()
    l:acquire()
    conc.gather(b)
    l:release()
  end)
  repeat conc.sleep(0.001) until l:locked()
  io.write(conc.dump())
  release:set()
  conc.gather(a)
end)
""")
        self.assertRegex(d, r"\ntask 'task-\d+' \(pid \d+, in thread 'main'\): awaiting task-\d+ "
                            r"[^\n]*\n  holds: lock 'pot'\n  stack traceback:\n\tconc.gather:\d+:"
                            r"[^\n]*\n\t[^\n]*holds.lua:8:")

    def test_a_thread_idle_in_its_loop_answers(self):
        d = self.dump_of("idle.lua", IDLE_LOOP)
        self.assertRegex(d, r"\nthread 'looper' \(pid \d+\): waiting in its event loop \(3 tasks\)\n"
                            r"  stack traceback:\n\t[^\n]*idle.lua:4: in function")
        self.assertNotRegex(d, r"'looper' \(pid \d+\): running")
        self.assertRegex(d, sleeping_task("looper", "idle.lua:5"))
        self.assertRegex(d, root_task("looper") + r"[^\n]*\n\t[^\n]*idle.lua:8:")
        self.assertRegex(d, r"\nthread 'task-\d+' \(pid \d+\): waiting \(event\) on event "
                            r"'[^']*idle.lua:2' for[^\n]*\n  stack traceback:\n\t[^\n]*idle.lua:6:")

    def test_a_thread_running_lua_answers_through_the_hook(self):
        d = self.dump_of("spin.lua", """
local go, stop = conc.event(), conc.event()
local t = conc.thread({name = "spinner"}, function()
  go:set()
  local n = 0
  while not stop:is_set() do n = n + 1 end
end)
go:wait()
io.write(conc.dump())
stop:set()
t:join()
""")
        self.assertRegex(d, r"\nthread 'spinner' \(pid \d+\): running\n  stack traceback:\n"
                            r"\t[^\n]*spin.lua:[456]: in function")

    def test_a_task_that_never_yields_shows_where_it_runs(self):
        # a hook set on the thread's state does not fire in a task's
        # coroutine: the dump hooks the coroutine that runs now (at line 5
        # when the hook comes as started:set() returns, else in the loop)
        d = self.dump_of("spin.lua", SPINNING_TASK)
        self.assertRegex(d, r"\nthread 'looper' \(pid \d+\): running a task in its event loop "
                            r"\(2 tasks\)\n  stack traceback:\n\t[^\n]*spin.lua:3: in function")
        self.assertRegex(d, r"\ntask 'task-\d+' \(pid \d+, in thread 'looper'\): running \(its loop "
                            r"runs nothing else until it yields or waits\)\n"
                            r"  stack traceback:\n\t[^\n]*spin.lua:[57]: in function")
        self.assertRegex(d, root_task("looper") + r"[^\n]*\n\t[^\n]*spin.lua:9:")
        self.assertNotIn("no Lua traceback", d)

    def sigquit(self, script, needles):
        """Runs script (which prints 'ready' and then reads a line), sends it
        SIGQUIT, reads stderr until every needle is in it, then lets it go
        on. Returns (its stdout, its stderr)."""
        p = start(self, [self.write("q.lua", script)])
        try:
            self.assertEqual(p.stdout.readline(), b"ready\n")
            p.send_signal(signal.SIGQUIT)
            err = b""
            deadline = time.monotonic() + TIMEOUT
            while (not all(n in err for n in needles)
                   or not err.endswith(b"\n")) and time.monotonic() < deadline:
                if not select.select([p.stderr], [], [], 1)[0]:
                    continue
                chunk = os.read(p.stderr.fileno(), 65536)
                if not chunk:
                    break
                err += chunk
            p.stdin.write(b"go\n")
            p.stdin.flush()
            out, rest = p.communicate(timeout=TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
        err = (err + rest).decode()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("conc.dump (pid %d)" % p.pid, err)
        return out, err

    def test_ctrl_backslash_prints_the_dump_and_goes_on(self):
        out, err = self.sigquit("local e = conc.event()\n"
                                "local t = conc.thread({name = 'sleeper'}, function() e:wait() end)\n"
                                "repeat until conc.dump():find(\"'sleeper' %(pid %d+%): waiting\")\n"
                                "print('ready')\nio.stdout:flush()\n"
                                "local line = io.read('l')\n"
                                "e:set()\nt:join()\nprint('after ' .. line)\n",
                                [b"thread 'main'", b"thread 'sleeper'"])
        self.assertEqual(out, b"after go\n")
        self.assertIn("thread 'sleeper'", err)
        self.assertIn("thread 'main'", err)

    def test_ctrl_backslash_shows_an_idle_loops_tasks(self):
        # once its task b parks (a, which ran before it, sleeps), the
        # looper's loop is idle: Ctrl-\ wakes it to describe itself
        script = IDLE_LOOP.split("local d, deadline", 1)[0] + (
            'repeat until conc.dump():find("%(pid %d+%): waiting %(event%)")\n'
            "print('ready')\nio.stdout:flush()\nio.read('l')\ndone:set()\nt:join()\n")
        out, err = self.sigquit(script, [b"conc.run's task", b"): sleeping"])
        self.assertEqual(out, b"")
        self.assertRegex(err, r"\nthread 'looper' \(pid \d+\): waiting in its event loop "
                              r"\(3 tasks\)\n")
        self.assertRegex(err, sleeping_task("looper", "q.lua:5"))
        self.assertRegex(err, root_task("looper"))

    def test_ctrl_backslash_shows_a_task_that_never_yields(self):
        script = SPINNING_TASK.split("io.write", 1)[0] + (
            "print('ready')\nio.stdout:flush()\nio.read('l')\nstop:set()\nt:join()\n")
        out, err = self.sigquit(script, [b"conc.run's task", b"in its event loop"])
        self.assertEqual(out, b"")
        self.assertRegex(err, r"\ntask 'task-\d+' \(pid \d+, in thread 'looper'\): running \(its "
                              r"loop runs nothing else[^\n]*\n  stack traceback:\n\t[^\n]*q.lua:[57]:")

LOCK_ORDER = r"""
local a, b = conc.lock("A"), conc.lock("B")
local t1 = conc.thread(function()
  a:with(function()
    b:with(function() end)
  end)
end)
t1:join()
local t2 = conc.thread(function()
  b:with(function()
    a:with(function() end)
  end)
end)
t2:join()
print("no deadlock this time")
"""


class LockOrderTest(CliTestCase):
    def test_both_orders_warned_with_both_sites(self):
        path = self.write("two.lua", LOCK_ORDER)
        r = self.run_conclua(["--lock-order", path])
        self.assertEqual((r.rc, r.out), (0, "no deadlock this time\n"), r)
        self.assertEqual(r.err.count("lock-order warning"), 1, r.err)
        self.assertIn("locks 'A' and 'B' are taken in both orders", r.err)
        for line in (4, 5, 10, 11):
            self.assertIn("two.lua:%d" % line, r.err)
        # without the option: silent
        r = self.run_conclua([path])
        self.assertEqual((r.rc, r.err), (0, ""))

    def test_one_order_is_silent(self):
        path = self.write("one.lua", LOCK_ORDER.replace(
            "b:with(function()\n    a:with", "a:with(function()\n    b:with"))
        r = self.run_conclua(["--lock-order", path])
        self.assertEqual((r.rc, r.err), (0, ""), r)


if __name__ == "__main__":
    unittest.main()
