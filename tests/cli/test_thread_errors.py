"""Errors in threads and processes that no join waits for (issue 11 item 4,
issue 10 item 6): reported on stderr when the thread ends, once; a join that
comes later still re-raises the error; a join that waits gets the error and
nothing is printed. The REPL shows the report too (before, it never did:
only the garbage collection of the Thread or the exit printed it)."""
import re

from clitest import CliTestCase, Pty, clean_env, main

REPORT = r"conclua: error in thread '%s' \(started at [^)]*\), (?:not|never) joined:\n"


class ThreadErrors(CliTestCase):
    def test_kept_thread_reported_when_it_ends(self):
        # The script keeps the Thread and has not joined it: the report comes
        # as the thread ends (before `alive()` turns false), not at exit.
        self.write("kept.lua", """
local t = conc.thread({name = "kept"}, function() error("late failure") end)
while t:alive() do conc.sleep(0.001) end
io.stderr:write("MARK\\n")
local ok, err = pcall(t.join, t)   -- a later join still re-raises
io.stderr:write("JOIN ", tostring(ok), " ", tostring(err):match("late failure") or "?", "\\n")
t = nil
collectgarbage()
""")
        r = self.run_conclua(["kept.lua"])
        self.assertEqual(r.rc, 0, r)
        m = re.search(REPORT % "kept" + r"kept\.lua:2: late failure\n", r.err)
        self.assertIsNotNone(m, r)
        self.assertLess(m.start(), r.err.index("MARK"), r)
        self.assertIn("JOIN false late failure", r.err)
        self.assertEqual(r.err.count("kept.lua:2: late failure\n"), 1, r)  # printed once

    def test_kept_process_reported_when_it_ends(self):
        self.write("kept.lua", """
local p = conc.process({name = "kid"}, function() error("child failure") end)
while p:alive() do conc.sleep(0.001) end
io.stderr:write("MARK\\n")
local ok, err = pcall(p.join, p)
io.stderr:write("JOIN ", tostring(ok), "\\n")
""")
        r = self.run_conclua(["kept.lua"])
        self.assertEqual(r.rc, 0, r)
        m = re.search(r"conclua: error in process 'kid' \(pid \d+, started at kept\.lua:2\), "
                      r"(?:not|never) joined:\n.*kept\.lua:2: child failure\n", r.err)
        self.assertIsNotNone(m, r)
        self.assertLess(m.start(), r.err.index("MARK"), r)
        self.assertIn("JOIN false", r.err)
        self.assertEqual(r.err.count("child failure\n"), 1, r)

    def test_started_through_pcall_names_the_line(self):
        # the start site (and a default object name) is the first frame
        # with a line: pcall, a C function, is skipped
        self.write("via.lua", """
local ok, t = pcall(conc.thread, {name = "via"}, function() error("boom") end)
local ok2, l = pcall(conc.lock)
io.stderr:write("LOCK ", tostring(l), "\\n")
while t:alive() do conc.sleep(0.001) end
""")
        r = self.run_conclua(["via.lua"])
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.err, r"conclua: error in thread 'via' \(started at via\.lua:2\)")
        self.assertIn("LOCK conc.lock 'via.lua:3'", r.err)

    def test_never_printed_twice(self):
        # Errors joined in a race with the thread's end: each is printed at
        # most once, and an error printed was never also left unraised.
        self.write("race.lua", """
local n = 0
for i = 1, 100 do
  local ev = conc.event()
  local t = conc.thread({name = "r" .. i}, function(e, i) e:wait(); error("E" .. i .. "!") end, ev, i)
  ev:set()
  local ok, err = pcall(t.join, t)
  assert(not ok and err:find("E" .. i .. "!", 1, true))
  n = n + 1
  t = nil
  collectgarbage()
end
print(n)
""")
        r = self.run_conclua(["race.lua"])
        self.assertEqual((r.rc, r.out), (0, "100\n"), r)
        for i in range(1, 101):
            self.assertLessEqual(r.err.count("E%d!\n" % i), 1, r)

    def test_repl_reports_kept_thread(self):
        repl = Pty([], env=clean_env(HOME=self.dir), cwd=self.dir)
        self.addCleanup(repl.close)
        repl.expect(r"(?m)^> ")
        repl.sendline("t = conc.thread({name = 'bg'}, function() error('in the repl') end)")
        # The report comes as the thread ends: before or after the next
        # prompt, but before the loop below sees the thread dead.
        repl.expect(REPORT % "bg" + r"stdin:1: in the repl\n")
        repl.sendline("while t:alive() do conc.sleep(0.001) end print('ended')")
        repl.expect(r"\nended\n> ")  # the prompt first: a Ctrl-D typed before it is lost
        repl.send("\x04")
        self.assertEqual(repl.wait(), 0)


if __name__ == "__main__":
    main()
