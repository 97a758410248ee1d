"""The REPL on a pseudo-terminal: results, continuation lines, errors,
Ctrl-C, history, prompts, and output of others drawn above the prompt."""
import os
import re
import signal
import time

from clitest import clean_env, LUA, main, needs_signals, PROMPT, Pty, ReplTestCase, VERSION_RE



class Repl(ReplTestCase):
    def test_banner_results_and_multiline(self):
        r = self.start()
        r.expect("^" + VERSION_RE + "\n")
        r.expect(PROMPT)
        r.sendline("1 + 1")
        r.expect(r"\n2\n> ")
        r.sendline("=3 * 3")
        r.expect(r"\n9\n> ")
        r.sendline("return 1, nil, 'z'")
        r.expect(r"\n1\tnil\tz\n> ")
        r.sendline("x = 5")  # a statement prints nothing
        r.expect(r"x = 5\n> ")
        r.sendline("for i = 1, 2 do")
        r.expect(r"\n>> ")
        r.sendline("print(i * x)")
        r.expect(r"\n>> ")
        r.sendline("end")
        r.expect(r"\n5\n10\n> ")
        r.sendline("print(conc == require 'conc')")
        r.expect(r"\ntrue\n> ")
        r.send("\x04")  # Ctrl-D: end of input
        self.assertEqual(r.wait(), 0)

    def test_error_then_continue(self):
        r = self.start()
        r.expect(PROMPT)
        r.sendline("error('boom')")
        m = r.expect(r"\n(.*)stdin:1: boom\nstack traceback:\n")
        self.assertEqual(m.group(1), "", "no program name in interactive errors")
        r.expect(PROMPT)
        r.sendline("local = 1")
        r.expect(r"stdin:1: <name> expected near '='\n> ")
        r.sendline("print('alive')")
        r.expect(r"\nalive\n> ")
        r.send("\x04")
        self.assertEqual(r.wait(), 0)

    @needs_signals
    def test_ctrl_c_interrupts_a_busy_chunk(self):
        r = self.start()
        r.expect(PROMPT)
        r.sendline("print('spinning') while true do end")
        r.expect(r"\nspinning\n")
        r.settle(0.2)
        r.send("\x03")
        r.expect(r"interrupted!\nstack traceback:\n")
        r.expect(PROMPT)
        r.sendline("print('back')")
        r.expect(r"\nback\n> ")
        # and once more: the handler is re-armed for each chunk
        r.sendline("print('spinning') while true do end")
        r.expect(r"\nspinning\n")
        r.settle(0.2)
        os.kill(r.pid, signal.SIGINT)
        r.expect(r"interrupted!\n")
        r.expect(PROMPT)
        r.send("\x04")
        self.assertEqual(r.wait(), 0)

    @needs_signals
    def test_ctrl_c_interrupts_a_conc_wait(self):
        r = self.start()
        r.expect(PROMPT)
        r.sendline("print('sleeping') conc.sleep(60)")
        r.expect(r"\nsleeping\n")
        r.settle(0.3)
        t0 = time.monotonic()
        r.send("\x03")
        r.expect(r"interrupted!\n")
        r.expect(PROMPT)
        self.assertLess(time.monotonic() - t0, 5)
        r.sendline("print('still here')")
        r.expect(r"\nstill here\n> ")
        r.send("\x04")
        self.assertEqual(r.wait(), 0)

    @needs_signals
    def test_ctrl_c_at_the_prompt(self):
        r = self.start()
        r.expect(PROMPT)
        r.send("abc")
        r.expect("abc")
        r.send("\x03")
        r.expect(r"\^C\n> ")
        r.sendline("print('line was dropped')")
        r.expect(r"\nline was dropped\n> ")
        # Ctrl-C in a continuation line drops the whole pending chunk
        r.sendline("for i = 1, 3 do")
        r.expect(">> ")
        r.send("\x03")
        r.expect(r"\^C\n> ")
        r.sendline("print('fresh')")
        r.expect(r"\nfresh\n> ")
        r.send("\x04")
        self.assertEqual(r.wait(), 0)

    def test_history_file(self):
        hist = os.path.join(self.dir, ".conclua_history")
        r = self.start()
        r.expect(PROMPT)
        r.sendline("y = 40 + 2")
        r.expect(PROMPT)
        r.sendline("print(y)")
        r.expect(r"\n42\n> ")
        r.send("\x04")
        self.assertEqual(r.wait(), 0)
        with open(hist) as f:
            self.assertEqual(f.read().split("\n")[-3:], ["y = 40 + 2", "print(y)", ""])
        # the next session recalls it with the up arrow
        r = self.start()
        r.expect(PROMPT)
        r.send("\x1b[A\x1b[A\n")
        r.expect(r"y = 40 \+ 2\n> ")
        r.sendline("print(y + 1)")
        r.expect(r"\n43\n> ")
        r.send("\x04")
        self.assertEqual(r.wait(), 0)

    def test_history_capped(self):
        hist = self.write(".conclua_history", "".join("old%d\n" % i for i in range(1500)))
        r = self.start()
        r.expect(PROMPT)
        r.sendline("new_line = 1")
        r.expect(PROMPT)
        r.send("\x04")
        self.assertEqual(r.wait(), 0)
        with open(hist) as f:
            lines = f.read().splitlines()
        self.assertLessEqual(len(lines), 1000)
        self.assertEqual(lines[-1], "new_line = 1")

    def test_no_history_without_home(self):
        r = self.start(home=False)
        r.expect(PROMPT)
        r.sendline("print('no home')")
        r.expect(r"\nno home\n> ")
        r.send("\x04")
        self.assertEqual(r.wait(), 0)
        self.assertFalse(os.path.exists(os.path.join(self.dir, ".conclua_history")))

    def test_prompts_from_globals(self):
        r = self.start()
        r.expect(PROMPT)
        r.sendline("_PROMPT = 'P> ' _PROMPT2 = 'Q> '")
        r.expect(r"\nP> ")
        r.sendline("if true then")
        r.expect(r"\nQ> ")
        r.sendline("end")
        r.expect(r"\nP> ")
        r.send("\x04")
        self.assertEqual(r.wait(), 0)

    def test_output_of_others_goes_above_the_prompt(self):
        # A background shell writes into this process's stdout and stderr
        # while the prompt shows a half-typed line: the text appears above
        # the prompt and the half-typed line survives.
        r = self.start()
        r.expect(PROMPT)
        r.sendline("pid = io.open('/proc/self/stat'):read('n')")
        r.expect(PROMPT)
        r.sendline("os.execute('(sleep 0.5; echo tick > /proc/' .. pid .. '/fd/1; "
                   "echo tock > /proc/' .. pid .. '/fd/2) &')")
        r.expect(r"true\texit\t0\n> ")
        r.send("x = 4")
        r.expect(r"x = 4")
        r.expect(r"tick\n(tock\n)?")
        # the input line was cleared first: "tick" starts at column 0
        self.assertRegex(r.raw, rb"(\r|\x1b\[K)tick\r?\n")
        r.expect(r"> x = 4")  # prompt and input redrawn after it
        r.send("2\n")
        r.sendline("print(x)")
        r.expect(r"\n42\n> ")
        self.assertIn("tock\n", r.text)
        r.send("\x04")
        self.assertEqual(r.wait(), 0)

    def test_i_after_script(self):
        self.write("s.lua", "greeting = 'hi from script'")
        r = self.start(["-i", "s.lua"])
        r.expect("^" + VERSION_RE + "\n")
        r.expect(PROMPT)
        r.sendline("greeting")
        r.expect(r"\nhi from script\n> ")
        r.send("\x04")
        self.assertEqual(r.wait(), 0)

    def test_os_exit_from_the_repl(self):
        r = self.start()
        r.expect(PROMPT)
        r.sendline("os.exit(4)")
        self.assertEqual(r.wait(), 4)

    def test_same_session_as_lua(self):
        if LUA is None:
            self.skipTest("lua5.4 not installed: comparison skipped")
        lines = ["1 + 1", "t = {}", "for i = 1, 3 do", "t[i] = i * i", "end",
                 "table.concat(t, ',')", "error('x')", "=#t"]
        outs = []
        for prog in (None, LUA):
            p = Pty(env=clean_env(HOME=self.dir, TERM="dumb"), cwd=self.dir, prog=prog)
            self.addCleanup(p.close)
            p.expect(PROMPT)
            for line in lines:
                p.sendline(line)
                p.expect(r"(?m)^>>? ")
            p.send("\x04")
            self.assertEqual(p.wait(), 0)
            # drop the banner (lua's line, then conclua's version line)
            outs.append(re.sub(r"^(conclua .*\n)?", "", re.sub(r"^.*\n", "", p.text, count=1)))
        self.assertEqual(outs[0], outs[1])


if __name__ == "__main__":
    main()
