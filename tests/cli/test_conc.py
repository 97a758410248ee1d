"""`conc` preloaded, and the final wait for non-daemon threads."""
import signal
import time

from clitest import CliTestCase, conc_threads_work, main, read_line, spawn, needs_signals

THREADS = None


def need_threads(test):
    global THREADS
    if THREADS is None:
        THREADS = conc_threads_work()
    if not THREADS:
        test.skipTest("conc.thread cannot run and join a function yet: thread tests skipped")


class Conc(CliTestCase):
    def test_conc_is_preloaded(self):
        r = self.run_conclua(["-e", "print(type(conc), conc == require('conc'), "
                                    "package.loaded.conc == conc, type(conc.thread))"])
        self.assertEqual((r.rc, r.out, r.err), (0, "table\ttrue\ttrue\tfunction\n", ""))

    def test_conc_in_script_and_with_E(self):
        self.write("c.lua", "print(conc.version)")
        r = self.run_conclua(["-E", "c.lua"])
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"^\d+\.\d+\.\d+\n$")

    def test_waits_for_non_daemon_thread(self):
        need_threads(self)
        self.write("w.lua", "conc.thread(function() conc.sleep(0.5) print('thread done') end)\n"
                            "print('main done')\n")
        r = self.run_conclua(["w.lua"])
        self.assertEqual((r.rc, r.out, r.err), (0, "main done\nthread done\n", ""))
        self.assertGreaterEqual(r.elapsed, 0.45)

    def test_waits_also_after_an_error(self):
        need_threads(self)
        self.write("w.lua", "conc.thread(function() conc.sleep(0.5) print('thread done') end)\n"
                            "error('main failed')\n")
        r = self.run_conclua(["w.lua"])
        self.assertEqual((r.rc, r.out), (1, "thread done\n"))
        self.assertTrue(r.err.startswith("conclua: w.lua:2: main failed\n"), r)

    def test_daemon_thread_does_not_hold_the_exit(self):
        need_threads(self)
        r = self.run_conclua(["-e", "conc.thread({daemon = true}, function() conc.sleep(60) end) "
                                    "print('bye')"], timeout=20)
        self.assertEqual((r.rc, r.out), (0, "bye\n"))
        self.assertLess(r.elapsed, 10)

    def test_os_exit_does_not_wait(self):
        need_threads(self)
        r = self.run_conclua(["-e", "conc.thread(function() conc.sleep(60) end) os.exit(3)"],
                             timeout=20)
        self.assertEqual(r.rc, 3)
        self.assertLess(r.elapsed, 10)

    @needs_signals
    def test_second_sigint_while_waiting_exits(self):
        need_threads(self)
        self.write("spin.lua", "conc.thread(function() while true do conc.sleep(0.05) end end)\n"
                               "print('ready') io.stdout:flush()\n"
                               "while true do end\n")
        with spawn(["spin.lua"], cwd=self.dir) as p:
            self.assertEqual(read_line(p.stdout), b"ready\n")
            p.send_signal(signal.SIGINT)  # interrupts the main chunk
            time.sleep(0.5)
            self.assertIsNone(p.poll(), "must still wait for the non-daemon thread")
            p.send_signal(signal.SIGINT)  # ends the wait
            rc = p.wait(timeout=10)
            err = p.stderr.read().decode()
        self.assertEqual(rc, -signal.SIGINT, err)
        self.assertIn("interrupted!", err)
        self.assertIn("conclua: interrupted while waiting for threads", err)


if __name__ == "__main__":
    main()
