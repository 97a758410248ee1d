"""At the end the program waits for its non-daemon threads. When they do not
end, it says which ones it waits for and what each is blocked in (after a
few seconds, or at the first Ctrl-C); the next Ctrl-C quits."""
import os
import select
import signal
import time

from clitest import CliTestCase, main, read_line, spawn, needs_signals

STUCK = ("local ready = conc.event('ready')\n"
         "conc.thread({name = 'stuck'}, function(ev) ev:wait() end, ready)\n"
         "print('main done') io.stdout:flush()\n")


def read_until(stream, needle, timeout):
    """stderr text up to `needle` (read from the descriptor: a buffered
    readline would hide lines from select)."""
    fd, text, end = stream.fileno(), b"", time.monotonic() + timeout
    while needle not in text:
        left = end - time.monotonic()
        r, _, _ = select.select([fd], [], [], max(left, 0))
        if not r:
            raise AssertionError("no %r within %ss; got:\n%s" % (needle, timeout, text.decode()))
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError("stderr ended before %r; got:\n%s" % (needle, text.decode()))
        text += chunk
    return text.decode()


class ExitWait(CliTestCase):
    def check_report(self, err):
        self.assertIn("the script has ended; waiting for its threads", err)
        self.assertIn("thread 'stuck'", err)
        self.assertIn("event 'ready'", err)       # what it is blocked in
        self.assertIn("stuck.lua:2", err)         # and where
        # main printed it: it says so, not "no Lua traceback"
        self.assertIn("thread 'main' (pid ", err)
        self.assertIn("running C code: it asked for this report", err)

    def test_report_after_a_quiet_wait(self):
        self.write("stuck.lua", STUCK)
        with spawn(["stuck.lua"], cwd=self.dir) as p:
            self.assertEqual(read_line(p.stdout), b"main done\n")
            self.check_report(read_until(p.stderr, b"stuck.lua:2", 20))
            self.assertIsNone(p.poll(), "it must still wait for the thread")
            # (spawn kills it; the Ctrl-C that quits is the next test's)

    @needs_signals
    def test_first_ctrl_c_reports_second_quits(self):
        self.write("stuck.lua", STUCK)
        with spawn(["stuck.lua"], cwd=self.dir) as p:
            self.assertEqual(read_line(p.stdout), b"main done\n")
            time.sleep(0.5)  # into the quiet wait (a Ctrl-C still in the chunk would end it)
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            err = read_until(p.stderr, b"stuck.lua:2", 10)
            self.assertLess(time.monotonic() - t0, 2.5, "reported at once, not after the quiet wait")
            self.check_report(err)
            self.assertIn("Ctrl-C again to quit", err)
            p.send_signal(signal.SIGINT)
            self.assertEqual(p.wait(timeout=10), -signal.SIGINT)

    @needs_signals
    def test_quitting_while_waiting_leaves_a_valid_trace(self):
        import json
        self.write("stuck.lua", STUCK)
        with spawn(["--trace", "t.json", "stuck.lua"], cwd=self.dir) as p:
            self.assertEqual(read_line(p.stdout), b"main done\n")
            time.sleep(0.5)
            p.send_signal(signal.SIGINT)
            read_until(p.stderr, b"stuck.lua:2", 10)
            p.send_signal(signal.SIGINT)
            self.assertEqual(p.wait(timeout=10), -signal.SIGINT)
        with open(os.path.join(self.dir, "t.json")) as f:
            events = json.load(f)
        events = events["traceEvents"] if isinstance(events, dict) else events
        self.assertTrue(any("stuck" in json.dumps(e) for e in events), events[:5])

    def test_threads_that_end_are_waited_for_quietly(self):
        self.write("ok.lua", "conc.thread(function() conc.sleep(0.2) print('thread done') end)\n")
        with spawn(["ok.lua"], cwd=self.dir) as p:
            self.assertEqual(p.wait(timeout=20), 0)
            self.assertEqual(p.stdout.read(), b"thread done\n")
            self.assertEqual(p.stderr.read(), b"")


if __name__ == "__main__":
    main()
