"""Errors, tracebacks and exit codes, compared with lua5.4."""
from clitest import CliTestCase, main


class Errors(CliTestCase):
    def test_runtime_error_traceback(self):
        self.write("bad.lua", "local function f()\n  error('bad thing')\nend\nprint('before')\nf()\n")
        r = self.compare(["bad.lua"])
        self.assertEqual((r.rc, r.out), (1, "before\n"))
        self.assertEqual(r.err, "conclua: bad.lua:2: bad thing\nstack traceback:\n"
                         "\t[C]: in function 'error'\n"
                         "\tbad.lua:2: in local 'f'\n"
                         "\tbad.lua:5: in main chunk\n"
                         "\t[C]: in ?\n")

    def test_error_in_required_module(self):
        self.write("mod.lua", "local M = {}\nfunction M.go() local x = nil; return x.y end\nreturn M\n")
        self.write("main.lua", "local m = require 'mod'\nm.go()\n")
        r = self.compare(["main.lua"])
        self.assertEqual(r.rc, 1)
        self.assertTrue(r.err.startswith("conclua: ./mod.lua:2: attempt to index a nil value (local 'x')\n"
                                         "stack traceback:\n"), r)

    def test_syntax_error(self):
        self.write("syn.lua", "print('never')\nlocal = 3\n")
        r = self.compare(["syn.lua"])
        self.assertEqual((r.rc, r.out, r.err), (1, "", "conclua: syn.lua:2: <name> expected near '='\n"))
        r = self.compare(["-e", "x ="])
        self.assertEqual((r.rc, r.err), (1, "conclua: (command line):1: unexpected symbol near <eof>\n"))

    def test_os_exit(self):
        cases = [("os.exit(3)", 3), ("os.exit(true)", 0), ("os.exit(false)", 1), ("os.exit()", 0),
                 ("os.exit(5, true)", 5)]
        for code, rc in cases:
            r = self.compare(["-e", "print('a') " + code + " print('b')"])
            self.assertEqual((r.rc, r.out, r.err), (rc, "a\n", ""), code)

    def test_os_exit_in_script_skips_the_rest(self):
        self.write("ex.lua", "io.write('x') os.exit(7)\nprint('not reached')\n")
        r = self.compare(["ex.lua"])
        self.assertEqual((r.rc, r.out), (7, "x"))

    def test_error_objects(self):
        cases = [
            ("error(setmetatable({}, {__tostring = function() return 'custom' end}))",
             "conclua: custom\n"),
            ("error({})", "conclua: (error object is a table value)\nstack traceback:\n"),
            ("error()", "conclua: (error object is a nil value)\nstack traceback:\n"),
            ("error(42)", "conclua: 42\nstack traceback:\n"),
            ("error('no position', 0)", "conclua: no position\nstack traceback:\n"),
        ]
        for code, start in cases:
            r = self.compare(["-e", code])
            self.assertEqual(r.rc, 1, code)
            self.assertTrue(r.err.startswith(start), (code, r.err))

    def test_nonexistent_script(self):
        r = self.compare(["no_such_script.lua", "arg"])
        self.assertEqual((r.rc, r.out, r.err),
                         (1, "", "conclua: cannot open no_such_script.lua: No such file or directory\n"))

    def test_error_stops_remaining_options(self):
        self.write("s.lua", "print('script')")
        r = self.compare(["-e", "error('first')", "-e", "print('second')", "s.lua"])
        self.assertEqual((r.rc, r.out), (1, ""))

    def test_stdin_script_error(self):
        r = self.compare(["-"], input="print('a')\nerror('from stdin')\n")
        self.assertEqual((r.rc, r.out), (1, "a\n"))
        self.assertTrue(r.err.startswith("conclua: stdin:2: from stdin\nstack traceback:\n"), r)

    def test_piped_stdin_error_exit_code(self):
        # Deliberate difference (docs/CLI.md): lua 5.4 exits with 0 when stdin
        # run without '-' fails; conclua exits with 1.
        r = self.compare([], input="error('piped')\n", same_rc=False)
        self.assertEqual(r.rc, 1)
        self.assertTrue(r.err.startswith("conclua: stdin:1: piped\n"), r)

    def test_script_ends_ok(self):
        self.write("ok.lua", "print('fine') return 1")
        r = self.compare(["ok.lua"])
        self.assertEqual((r.rc, r.out, r.err), (0, "fine\n", ""))


if __name__ == "__main__":
    main()
