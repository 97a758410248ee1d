"""The terminal is left as it was when the program ends while the REPL prompt
is shown: killed by SIGTERM or SIGHUP, or by os.exit in another thread. The
prompt puts the terminal in readline's raw mode (no ECHO, no ICANON) and
turns bracketed paste on; with readline's own signal handlers off, nothing
undid that (lua5.4, whose readline catches the signals, restores both)."""
import errno
import os
import re
import signal
import termios
import time

from clitest import main, PROMPT, ReplTestCase

PASTE_ON = b"\x1b[?2004h"
PASTE_OFF = b"\x1b[?2004l"


class ReplTerminal(ReplTestCase):
    def lflag(self, r):
        # on Linux the master side reports the terminal's (slave's) settings,
        # and they outlive the program (the master stays open)
        return termios.tcgetattr(r.fd)[3]

    def assert_raw(self, r):
        """The prompt is shown: readline's raw mode (this also shows that
        lflag reads the program's terminal)."""
        deadline = time.monotonic() + 10
        while self.lflag(r) & (termios.ECHO | termios.ICANON):
            if time.monotonic() > deadline:
                self.fail("the terminal never left canonical mode at the prompt")
            r.settle(0.02)

    def assert_restored(self, r):
        lflag = self.lflag(r)
        self.assertTrue(lflag & termios.ECHO, "ECHO left off; output:\n%r" % r.raw[-200:])
        self.assertTrue(lflag & termios.ICANON, "ICANON left off; output:\n%r" % r.raw[-200:])
        on = r.raw.rfind(PASTE_ON)
        if on >= 0:
            self.assertIn(PASTE_OFF, r.raw[on:], "bracketed paste left on; output:\n%r"
                          % r.raw[-200:])

    def gate(self, name):
        """A FIFO: a thread that reads it waits until release() writes it."""
        path = os.path.join(self.dir, name)
        os.mkfifo(path)
        return path

    def release(self, path, timeout=10):
        """Opens the FIFO for writing once its reader is there (a
        non-blocking open fails with ENXIO until then), and closes it: the
        reader's read('a') ends."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise
                self.repl.settle(0.02)
        os.write(fd, b"go\n")
        os.close(fd)

    def killed_at_the_prompt(self, sig):
        r = self.start()
        r.expect(PROMPT)
        r.send("abc")  # typed but not entered
        r.expect("abc")
        self.assert_raw(r)
        os.kill(r.pid, sig)
        self.assertEqual(r.wait(), -sig, r.text)  # still ended by the signal
        self.assert_restored(r)
        if PASTE_ON in r.raw:  # as lua5.4's readline leaves it
            self.assertRegex(r.raw, re.escape(PASTE_OFF) + b"\r?$")

    def test_sigterm_at_the_prompt(self):
        self.killed_at_the_prompt(signal.SIGTERM)

    def test_sighup_at_the_prompt(self):
        self.killed_at_the_prompt(signal.SIGHUP)

    def test_os_exit_in_a_thread_at_the_prompt(self):
        # The thread must call os.exit while the prompt is shown, and only
        # the test sees when that is: so it waits on FIFOs that the test
        # opens once it has seen the prompt (a conc.event set by a REPL
        # line would wake it while that line still runs, and a sleep would
        # only make the order likely).
        start, finish = self.gate("start"), self.gate("finish")
        r = self.start()
        r.expect(PROMPT)
        r.sendline("t = conc.thread({daemon = true}, function() "
                   "io.open('start'):read('a') print('bye') "
                   "io.open('finish'):read('a') io.write('last words') os.exit(0) end)")
        r.expect(r"\n> ")
        self.assert_raw(r)
        self.release(start)
        r.expect(r"bye\n> ")  # drawn above the prompt by the relay
        self.release(finish)
        self.assertEqual(r.wait(), 0, r.text)
        self.assert_restored(r)
        # left in stdio's buffer until exit flushes it: descriptor 1 is the
        # terminal again by then, not the relay's pipe that nobody reads
        self.assertIn("last words", r.text[r.pos:])


if __name__ == "__main__":
    main()
