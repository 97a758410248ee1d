"""conclua's command-line options, compared with lua5.4 where they must agree."""
import os
import re

from clitest import LUA, VERSION_RE, CliTestCase, clean_env, main

USAGE_LUA = """usage: conclua [options] [script [args]]
Available options are:
  -e stat   execute string 'stat'
  -i        enter interactive mode after executing 'script'
  -l mod    require library 'mod' into global 'mod'
  -l g=mod  require library 'mod' into global 'g'
  -v        show version information
  -E        ignore environment variables
  -W        turn warnings on
  --        stop handling options
  -         stop handling options and execute stdin
"""

ARG_DUMP = ("local ks = {} for k in pairs(arg) do ks[#ks + 1] = k end table.sort(ks) "
            "for _, k in ipairs(ks) do print(k, arg[k]) end print('...', ...)")


class Options(CliTestCase):
    def test_e_runs_in_order(self):
        r = self.compare(["-e", "x = 1", "-e", "print(x + 1)", "-eprint('glued')"])
        self.assertEqual((r.rc, r.out, r.err), (0, "2\nglued\n", ""))

    def test_e_chunkname(self):
        r = self.compare(["-e", "print(debug.getinfo(1, 'S').short_src)"])
        self.assertEqual(r.out, "(command line)\n")

    def test_l_module(self):
        self.write("m.lua", "return {name = 'm'}")
        self.write("a/b.lua", "return {name = 'a.b'}")
        r = self.compare(["-l", "m", "-e", "print(m.name)"])
        self.assertEqual((r.rc, r.out), (0, "m\n"))
        r = self.compare(["-lm", "-e", "print(m.name)"])
        self.assertEqual(r.out, "m\n")
        r = self.compare(["-l", "x=m", "-e", "print(x.name, m)"])
        self.assertEqual(r.out, "m\tnil\n")
        r = self.compare(["-l", "a.b", "-e", "print(_G['a.b'].name)"])
        self.assertEqual(r.out, "a.b\n")

    def test_l_missing_module(self):
        r = self.compare(["-l", "no_such_module_xyz"])
        self.assertEqual(r.rc, 1)
        self.assertTrue(r.err.startswith("conclua: module 'no_such_module_xyz' not found:"), r)

    def test_v(self):
        r = self.compare(["-v"], same_out=False)
        self.assertEqual(r.rc, 0)
        self.assertRegex(r.out, "^" + VERSION_RE + "\n$")
        r = self.compare(["-v", "-e", "print(1)"], same_out=False)
        self.assertRegex(r.out, "^" + VERSION_RE + "\n1\n$")

    def test_v_names_the_lua_version(self):
        if LUA is None:
            self.skipTest("lua5.4 not installed")
        lua_line = self.run_lua(["-v"]).out.strip()
        self.assertEqual(self.run_conclua(["-v"]).out.split("\n")[0], lua_line)

    def test_version_and_h(self):
        r = self.run_conclua(["--version"])
        self.assertEqual(r.rc, 0)
        self.assertRegex(r.out, "^" + VERSION_RE + "\n$")
        for opt in ("-h", "--help"):
            r = self.run_conclua([opt])
            self.assertEqual((r.rc, r.err), (0, ""), opt)
            self.assertTrue(r.out.startswith("usage: conclua [options] [script [args]]\n"), r)
            self.assertIn("--version", r.out)

    def test_messages_use_argv0(self):
        # as lua.c does: the program names itself by argv[0]
        import subprocess
        p = subprocess.run(["myconc", "-x"], executable=os.environ["CONCLUA"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith("myconc: unrecognized option '-x'\nusage: myconc "),
                        p.stderr)
        p = subprocess.run(["myconc", "-e", "error('x', 0)"], executable=os.environ["CONCLUA"],
                           capture_output=True, text=True, timeout=30)
        self.assertTrue(p.stderr.startswith("myconc: x"), p.stderr)

    def test_E_ignores_environment(self):
        env = clean_env(HOME=self.dir, LUA_INIT="print('init ran')",
                        LUA_PATH="/nowhere/?.lua", LUA_PATH_5_4="/nowhere54/?.lua")
        r = self.compare(["-E", "-e", "print(package.path:find('nowhere', 1, true))"], env=env)
        self.assertEqual((r.rc, r.out), (0, "nil\n"))
        r = self.compare(["-e", "print(package.path)"], env=env)
        self.assertEqual(r.out, "init ran\n/nowhere54/?.lua\n")

    def test_W_turns_warnings_on(self):
        code = "warn('one') warn('@off') warn('two') warn('@on') warn('three')"
        r = self.compare(["-W", "-e", code])
        self.assertEqual((r.rc, r.out, r.err), (0, "", "Lua warning: one\nLua warning: three\n"))
        r = self.compare(["-e", code])
        self.assertEqual(r.err, "Lua warning: three\n")

    def test_dash_runs_stdin_with_args(self):
        r = self.compare(["-", "a", "b"], input="print(arg[0], ...)")
        self.assertEqual((r.rc, r.out), (0, "-\ta\tb\n"))

    def test_stdin_without_script(self):
        r = self.compare([], input="print('from stdin', #arg)")
        self.assertEqual((r.rc, r.out), (0, "from stdin\t0\n"))

    def test_double_dash(self):
        self.write("s.lua", "print('script', ...)")
        r = self.compare(["--", "s.lua", "-e", "x"])
        self.assertEqual((r.rc, r.out), (0, "script\t-e\tx\n"))
        self.write("-", "print('file named dash')")
        r = self.compare(["--", "-"])
        self.assertEqual(r.out, "file named dash\n")
        r = self.compare(["-e", "print('only e')", "--"])
        self.assertEqual((r.rc, r.out), (0, "only e\n"))

    def test_arg_table(self):
        self.write("args.lua", ARG_DUMP)
        r = self.compare(["-e", "x=1", "args.lua", "p", "-q"], same_out=False)
        self.assertEqual(r.rc, 0)
        self.assertEqual(r.out, "-3\t%s\n-2\t-e\n-1\tx=1\n0\targs.lua\n1\tp\n2\t-q\n...\tp\t-q\n"
                         % "conclua")
        r = self.compare(["-e", ARG_DUMP], same_out=False)
        self.assertEqual(r.out, "0\tconclua\n1\t-e\n2\t%s\n...\n" % ARG_DUMP)
        # lua's arg[-n] is its own argv[0]: both are run as "conclua"
        self.compare(["-e", "x=1", "args.lua", "p", "-q"])

    def test_script_varargs(self):
        self.write("va.lua", "print(select('#', ...), ...)")
        r = self.compare(["va.lua", "1", "", "three"])
        self.assertEqual(r.out, "3\t1\t\tthree\n")

    def test_e_may_change_arg(self):
        self.write("va.lua", "print(...)")
        r = self.compare(["-e", "arg = {'changed'}", "va.lua", "orig"])
        self.assertEqual(r.out, "changed\n")
        r = self.compare(["-e", "arg = 1", "va.lua"])
        self.assertEqual(r.rc, 1)
        self.assertIn("'arg' is not a table", r.err)

    def test_lua_init(self):
        self.write("init.lua", "print('init file', ...)")
        for env, out in [({"LUA_INIT": "print('init')"}, "init\nmain\n"),
                         ({"LUA_INIT": "@init.lua"}, "init file\nmain\n"),
                         ({"LUA_INIT_5_4": "print('5.4')", "LUA_INIT": "print('plain')"},
                          "5.4\nmain\n")]:
            r = self.compare(["-e", "print('main')"], env=clean_env(HOME=self.dir, **env))
            self.assertEqual((r.rc, r.out, r.err), (0, out, ""), env)

    def test_lua_init_errors(self):
        r = self.compare(["-e", "print('main')"],
                         env=clean_env(HOME=self.dir, LUA_INIT="error('boom')"))
        self.assertEqual((r.rc, r.out), (1, ""))
        self.assertTrue(r.err.startswith("conclua: LUA_INIT:1: boom\nstack traceback:\n"), r)
        r = self.compare(["-e", "print('main')"],
                         env=clean_env(HOME=self.dir, LUA_INIT="@missing.lua"))
        self.assertEqual((r.rc, r.err), (1, "conclua: cannot open missing.lua: No such file or directory\n"))
        r = self.compare(["-e", "print('main')"],
                         env=clean_env(HOME=self.dir, LUA_INIT_5_4="x = = 1"))
        self.assertEqual(r.rc, 1)
        self.assertTrue(r.err.startswith("conclua: LUA_INIT_5_4:1: "), r)

    def test_bad_options_print_usage(self):
        cases = [(["-x"], "unrecognized option '-x'"),
                 (["-vx"], "unrecognized option '-vx'"),
                 (["-Ex"], "unrecognized option '-Ex'"),
                 (["--x"], "unrecognized option '--x'"),
                 (["-e"], "'-e' needs argument"),
                 (["-l"], "'-l' needs argument"),
                 (["-e", "-v"], "'-e' needs argument")]
        for args, msg in cases:
            r = self.compare(args, same_err=False)
            self.assertEqual((r.rc, r.out), (1, ""), args)
            self.assertTrue(r.err.startswith("conclua: %s\n%s" % (msg, USAGE_LUA)), r)
            if LUA:
                ref = self.run_lua(args)  # lua5.4's usage is a prefix of ours
                self.assertTrue(r.err.startswith(ref.err), (r.err, ref.err))

    def test_help(self):
        r = self.run_conclua(["--help"])
        self.assertEqual((r.rc, r.err), (0, ""))
        self.assertTrue(r.out.startswith(USAGE_LUA), r)
        self.assertIn("--version", r.out)
        # the views of issue 12 are listed once built (tests/cli/test_trace.py)
        for opt in ("--trace FILE", "--timeline FILE", "--lock-order", "Ctrl-\\"):
            self.assertIn(opt, r.out)

    def test_conclua_options_parsed(self):
        for args, made in [(["--trace", "t.json", "-e", "print(1)"], "t.json"),
                           (["--trace=t2.json", "-e", "print(1)"], "t2.json"),
                           (["--timeline", "t.html", "-e", "print(1)"], "t.html"),
                           (["--lock-order", "-e", "print(1)"], None)]:
            r = self.run_conclua(args)
            self.assertEqual((r.rc, r.out, r.err), (0, "1\n", ""), args)
            if made:
                self.assertTrue(os.path.exists(os.path.join(self.dir, made)), args)
        for args in (["--trace"], ["--trace", "-e", "x"], ["--timeline="]):
            r = self.run_conclua(args)
            self.assertEqual(r.rc, 1, args)
            self.assertRegex(r.err, r"^conclua: '--(trace|timeline)=?' needs argument\nusage:")

    def test_i_with_piped_stdin_matches_lua(self):
        # not a terminal: the REPL prints prompts and echoes lines like lua's
        text = "x = 6\nx * 7\n=x\nfor i = 1, 2 do\nprint(i)\nend\nerror('e')\nreturn 1, nil, 'z'\n"
        r = self.compare(["-i"], input=text, same_out=False)
        self.assertEqual(r.rc, 0)
        lines = r.out.split("\n")
        self.assertRegex("\n".join(lines[:2]), "^" + VERSION_RE + "$")
        self.assertEqual("\n".join(lines[2:]),
                         "> x = 6\n> x * 7\n42\n> =x\n6\n> for i = 1, 2 do\n>> print(i)\n"
                         ">> end\n1\n2\n> error('e')\n> return 1, nil, 'z'\n1\tnil\tz\n> \n")
        self.assertTrue(r.err.startswith("stdin:1: e\nstack traceback:\n"), r)
        if LUA:
            ref = self.run_lua(["-i"], input=text)
            self.assertEqual(r.out.split("\n", 2)[2], ref.out.split("\n", 1)[1])

    def test_prompt_variables_piped(self):
        text = "_PROMPT = 'P> '\n_PROMPT2 = setmetatable({}, {__tostring = function() return 'Q> ' end})\nif true then\nend\n"
        r = self.compare(["-i"], input=text, same_out=False)
        self.assertTrue(r.out.endswith("> _PROMPT = 'P> '\nP> _PROMPT2 = setmetatable({}, {__tostring = function() return 'Q> ' end})\nP> if true then\nQ> end\nP> \n"), r)


if __name__ == "__main__":
    main()
