"""conc.so loaded by the stock lua5.4 interpreter with require "conc"."""
import os
import shutil
import subprocess
import sys
import unittest

LUA = shutil.which("lua5.4")
SO_DIR = os.environ.get("CONC_SO_DIR", "build")


def run(code, timeout=60):
    prelude = 'package.cpath = "%s/?.so;" .. package.cpath; ' % SO_DIR
    return subprocess.run([LUA, "-e", prelude + code], capture_output=True, text=True,
                          timeout=timeout)


@unittest.skipIf(LUA is None, "lua5.4 is not installed")
@unittest.skipIf(os.environ.get("CONCLUA_SANITIZED") == "1",
                 "a sanitizer-built conc.so cannot load into the uninstrumented lua5.4")
class Module(unittest.TestCase):
    def test_require_and_thread_round_trip(self):
        r = run('local conc = require "conc"\n'
                'local t = conc.thread(function(a, b) return a * b, conc.current().name end, 6, 7)\n'
                'local ok, v, name = t:join(30)\n'
                'print(ok, v, name == t.name, type(conc.version))')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "true\t42\ttrue\tstring\n")

    def test_module_upvalue_is_rebound_in_the_thread(self):
        # `conc` is an upvalue here (not a global): the copy in the thread is
        # bound to that thread's own loaded module.
        r = run('local conc = require "conc"\n'
                'local q = conc.queue and conc.queue() or nil\n'
                'local t = conc.thread(function() return conc.cpus() end)\n'
                'local ok, n = t:join(30)\n'
                'print(ok, math.type(n))')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "true\tinteger\n")

    def test_closing_the_state_waits_for_non_daemon_threads(self):
        # The thread outlives the main chunk (it sleeps); its line must still
        # be printed before the interpreter exits.
        r = run('local conc = require "conc"\n'
                'conc.thread(function() conc.sleep(0.3); print("thread done") end)\n'
                'print("main done")')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.splitlines()), ["main done", "thread done"])

    def test_exit_never_crashes(self):
        # The interpreter unloads conc.so at exit (dlclose in lua_close):
        # the module must stay mapped under its own worker threads, and
        # close's teardown must stop them in order. Crashed about one run in
        # four before; 120 runs, four at a time.
        code = ('local conc = require "conc"\n'
                'local t = conc.thread(function() return 1 end)\n'
                'print(t:join())')
        prelude = 'package.cpath = "%s/?.so;" .. package.cpath; ' % SO_DIR
        bad = []
        for _ in range(30):
            procs = [subprocess.Popen([LUA, "-e", prelude + code], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(4)]
            for p in procs:
                out, err = p.communicate(timeout=60)
                if p.returncode != 0 or out != "true\t1\n":
                    bad.append((p.returncode, out, err))
        self.assertEqual(bad, [])

    def test_thread_error_reaches_join(self):
        r = run('local conc = require "conc"\n'
                'local t = conc.thread({name = "w"}, function() error("boom") end)\n'
                'print(pcall(t.join, t, 30))')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("false\t", r.stdout)
        self.assertIn("thread 'w': ", r.stdout)
        self.assertIn("boom", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
