"""SIGINT while a script runs (not the REPL): like lua, the chunk is
interrupted with an "interrupted!" error and the exit code is 1."""
import signal
import time

from clitest import CONCLUA, LUA, CliTestCase, main, read_line, spawn, needs_signals


@needs_signals
class ScriptSigint(CliTestCase):
    def interrupt(self, prog, script, delay=0.2):
        """Starts `script`, waits for its 'ready' line, sends SIGINT. Returns
        (exit code, stderr, seconds from the signal to the end)."""
        with spawn([script], prog=prog, cwd=self.dir) as p:
            self.assertEqual(read_line(p.stdout), b"ready\n")
            time.sleep(delay)
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            rc = p.wait(timeout=10)
            elapsed = time.monotonic() - t0
            return rc, p.stderr.read().decode(), elapsed

    def test_busy_loop_is_interrupted(self):
        self.write("busy.lua", "print('ready') io.stdout:flush()\nwhile true do end\n")
        rc, err, elapsed = self.interrupt(CONCLUA, "busy.lua")
        self.assertEqual(rc, 1, err)
        self.assertTrue(err.startswith("conclua: interrupted!\nstack traceback:\n"), err)
        self.assertIn("busy.lua:2: in main chunk", err)
        self.assertLess(elapsed, 5)
        if LUA:
            lrc, lerr, _ = self.interrupt(LUA, "busy.lua")
            self.assertEqual((rc, err.splitlines()[0]), (lrc, lerr.splitlines()[0]))

    def test_conc_wait_in_main_thread_is_interrupted(self):
        self.write("sleepy.lua", "print('ready') io.stdout:flush()\nconc.sleep(60)\nprint('not reached')\n")
        rc, err, elapsed = self.interrupt(CONCLUA, "sleepy.lua")
        self.assertEqual(rc, 1, err)
        self.assertIn("interrupted!", err.splitlines()[0])
        self.assertIn("in function 'conc.sleep'", err)
        self.assertLess(elapsed, 5)

    def test_pcall_sees_the_interrupt_as_an_error(self):
        self.write("caught.lua", "print('ready') io.stdout:flush()\n"
                                 "local ok, e = pcall(function() while true do end end)\n"
                                 "io.stderr:write('caught: ', tostring(e), '\\n')\n")
        rc, err, _ = self.interrupt(CONCLUA, "caught.lua")
        self.assertEqual((rc, err), (0, "caught: interrupted!\n"))

    def test_second_sigint_kills_a_stuck_chunk(self):
        # an interrupt the chunk swallows leaves the default action for the next
        self.write("stubborn.lua", "print('ready') io.stdout:flush()\n"
                                   "while true do pcall(function() while true do end end) end\n")
        with spawn(["stubborn.lua"], cwd=self.dir) as p:
            self.assertEqual(read_line(p.stdout), b"ready\n")
            time.sleep(0.2)
            p.send_signal(signal.SIGINT)
            time.sleep(0.3)
            self.assertIsNone(p.poll(), "the first SIGINT was caught by pcall")
            p.send_signal(signal.SIGINT)
            self.assertEqual(p.wait(timeout=10), -signal.SIGINT)


if __name__ == "__main__":
    main()
