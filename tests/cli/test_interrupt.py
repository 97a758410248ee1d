"""One Ctrl-C in a blocking conc call raises "interrupted!" once, and it can
be caught: the cleanup after it (conc waits included) runs undisturbed. For
each of the 14 blocking calls, in the conclua program and in the stock lua5.4
interpreter with conc.so (whose own SIGINT handler conc chains)."""
import os
import signal

from clitest import LUA, CliTestCase, main, read_line, spawn, needs_signals

SO_DIR = os.environ.get("CONC_SO_DIR", "build")

# name -> (setup, the blocking call, cleanup after catching it)
HOLDER = ("local go = conc.event()\n"
          "conc.thread({daemon = true}, function(l, go) l:acquire(); go:set();"
          " conc.semaphore(0):acquire() end, x, go)\n"
          "go:wait()\n")
CALLS = {
    "lock": ("local x = conc.lock('L')\n" + HOLDER, "x:acquire()", ""),
    "rlock": ("local x = conc.rlock('R')\n" + HOLDER, "x:acquire()", ""),
    "lock_with": ("local x = conc.lock('W')\n" + HOLDER, "x:with(print)", ""),
    "semaphore": ("local x = conc.semaphore(0)", "x:acquire()", ""),
    "event": ("local x = conc.event()", "x:wait()", ""),
    "condition": ("local x = conc.condition(); x:acquire()", "x:wait()",
                  "assert(not pcall(x.release, x) or true)"),
    "barrier": ("local x = conc.barrier(2)", "x:wait()", ""),
    "queue_get": ("local x = conc.queue()", "x:get()", ""),
    "queue_put": ("local x = conc.queue(1); x:put(1)", "x:put(2)", ""),
    "queue_join": ("local x = conc.queue(); x:put(1)", "x:join()", ""),
    "select": ("local x, y = conc.queue(), conc.queue()", "conc.select(x, y)", ""),
    "thread_join": ("local x = conc.thread({daemon = true}, function()"
                    " conc.semaphore(0):acquire() end)", "x:join()", ""),
    "process_join": ("local x = conc.process(function() conc.sleep(60) end)", "x:join()",
                     "x:kill(); pcall(x.join, x, 10)"),
    "pipe_recv": ("local x, y = conc.pipe()", "x:recv()", ""),
    "sleep": ("", "conc.sleep(60)", ""),
}

SCRIPT = """local conc = conc or require "conc"
{setup}
print("ready") io.stdout:flush()
local ok, e = pcall(function() {call} end)
io.stderr:write("caught: ", tostring(e):match("^[^\\n]*"), "\\n")
{cleanup}
-- the interrupt was consumed: conc waits after it work as usual
local q = conc.queue(); q:put(1); assert(q:get(5) == 1)
conc.sleep(0.05)
assert(not conc.event():wait(0.05))
io.stderr:write("cleanup done\\n")
"""


@needs_signals
class CatchableInterrupt(CliTestCase):
    def check_all(self, prog=None, prefix=()):
        procs = {}
        try:
            for name, (setup, call, cleanup) in CALLS.items():
                self.write(name + ".lua", SCRIPT.format(setup=setup, call=call, cleanup=cleanup))
                cm = spawn(list(prefix) + [name + ".lua"], prog=prog, cwd=self.dir)
                procs[name] = (cm, cm.__enter__())
            for name, (cm, p) in procs.items():
                self.assertEqual(read_line(p.stdout), b"ready\n", name)
                # the main thread is parked in its wait once it printed ready;
                # a short pause makes sure it got there
            import time
            time.sleep(0.3)
            for name, (cm, p) in procs.items():
                p.send_signal(signal.SIGINT)
            bad = {}
            for name, (cm, p) in procs.items():
                rc = p.wait(timeout=20)
                err = p.stderr.read().decode()
                lines = err.splitlines()
                if (rc != 0 or len(lines) != 2 or not lines[0].startswith("caught: ")
                        or not lines[0].endswith("interrupted!") or lines[1] != "cleanup done"):
                    bad[name] = (rc, err)
            self.assertEqual(bad, {})
        finally:
            for cm, p in procs.values():
                cm.__exit__(None, None, None)

    def test_conclua(self):
        self.check_all()

    def test_stock_lua_with_conc_so(self):
        if LUA is None:
            self.skipTest("lua5.4 is not installed")
        if os.environ.get("CONCLUA_SANITIZED") == "1":
            self.skipTest("a sanitizer-built conc.so cannot load into the uninstrumented lua5.4")
        self.check_all(prog=LUA, prefix=["-e", "package.cpath = '%s/?.so;' .. package.cpath"
                                         % os.path.abspath(SO_DIR)])


if __name__ == "__main__":
    main()
