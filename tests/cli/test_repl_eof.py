"""Ctrl-D ends the REPL with status 0 whenever it is typed: also before the
first prompt or while a chunk runs, when the terminal is in canonical mode
(there the terminal keeps an end of file as a NUL byte, which readline read
as Ctrl-@ once it had switched to raw mode: the REPL went on waiting)."""
import os

from clitest import main, PROMPT, ReplTestCase



class ReplEof(ReplTestCase):
    def gate(self):
        """A FIFO: a chunk that reads it waits until release() writes it."""
        path = os.path.join(self.dir, "gate")
        os.mkfifo(path)
        return path

    def send_eof(self, r, before=""):
        """Types `before`, Ctrl-D and then a comment line, and waits for the
        terminal's echo of the comment: the terminal has taken the Ctrl-D by
        then (input is processed in order), so it met the canonical mode.
        The REPL must end at the Ctrl-D and never read the comment."""
        r.send(before + "\x04-- after\n")
        r.expect(r"-- after\n")

    def release(self, path):
        with open(path, "w") as f:
            f.write("go\n")

    def test_eof_at_once(self):
        r = self.start()
        r.send("\x04")  # before the program has even started, as a rule
        self.assertEqual(r.wait(), 0, r.text)

    def test_eof_before_the_first_prompt(self):
        # -e runs before the REPL starts: it waits for the gate, which opens
        # only after Ctrl-D was typed, so the Ctrl-D surely came first
        gate = self.gate()
        r = self.start(["-i", "-e", "print('started') io.open('gate'):read('a')"])
        r.expect(r"started\n")
        self.send_eof(r)
        self.release(gate)
        self.assertEqual(r.wait(), 0, r.text)

    def test_lines_then_eof_before_the_first_prompt(self):
        gate = self.gate()
        r = self.start(["-i", "-e", "print('started') io.open('gate'):read('a')"])
        r.expect(r"started\n")
        self.send_eof(r, "print(6 * 7)\n")
        self.release(gate)
        r.expect(PROMPT + r"print\(6 \* 7\)\n42\n")  # the line still runs, then the end
        self.assertEqual(r.wait(), 0, r.text)

    def test_eof_while_a_chunk_runs(self):
        gate = self.gate()
        r = self.start()
        r.expect(PROMPT)
        r.sendline("print('running') io.open('gate'):read('a') print('ran')")
        r.expect(r"\nrunning\n")
        self.send_eof(r)
        self.release(gate)
        r.expect(r"(?m)^ran\n")
        self.assertEqual(r.wait(), 0, r.text)

    def test_ctrl_d_in_a_line_is_not_the_end(self):
        # typed ahead: "x = 1" then Ctrl-D ends that text (canonical mode),
        # and it reaches the prompt as typed, not as a line or the end
        gate = self.gate()
        r = self.start(["-i", "-e", "print('started') io.open('gate'):read('a')"])
        r.expect(r"started\n")
        r.send("x = 1\x04")
        self.release(gate)
        r.expect(r"> x = 1")
        r.sendline(" + 1 print(x)")
        r.expect(r"\n2\n> ")
        r.send("\x04")
        self.assertEqual(r.wait(), 0, r.text)


if __name__ == "__main__":
    main()
