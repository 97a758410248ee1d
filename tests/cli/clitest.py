"""Helpers shared by the conclua CLI tests (standard library only).

The program under test is named by the CONCLUA environment variable (CTest
sets it). Where conclua must behave like the standard interpreter, the tests
also run /usr/bin/lua5.4 (found on PATH as lua5.4) and compare; both programs
are started with argv[0] = "conclua" so that lua's messages carry the same
program name. When lua5.4 is missing, comparisons are skipped with a message
and the hard-coded expectations still run.
"""
import contextlib
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

CONCLUA = os.environ.get("CONCLUA", "")
LUA = shutil.which("lua5.4")
TIMEOUT = 30  # seconds, for any single run of a program

if not CONCLUA or not os.access(CONCLUA, os.X_OK):
    sys.stderr.write("CONCLUA must name the conclua program (got %r)\n" % CONCLUA)
    sys.exit(2)

if LUA is None:
    sys.stderr.write("NOTE: lua5.4 is not installed: comparisons with the reference "
                     "interpreter are skipped; conclua's own expected outputs are "
                     "still checked\n")

# lua's own line as it is (it ends with "PUC-Rio"), then conclua's version.
VERSION_RE = r"Lua 5\.4\.\d+  Copyright \(C\) 1994-\d+ Lua\.org, PUC-Rio\nconclua \d+\.\d+\.\d+"

ANSI_RE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[=>])")


def clean_env(**extra):
    """The caller's environment without Lua's variables, plus `extra`
    (a value of None removes the variable)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LUA_INIT", "LUA_PATH", "LUA_CPATH"))}
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


class Result:
    def __init__(self, rc, out, err, elapsed):
        self.rc, self.out, self.err, self.elapsed = rc, out, err, elapsed

    def __repr__(self):
        return "rc=%r\n--- stdout ---\n%s--- stderr ---\n%s" % (self.rc, self.out, self.err)


def run(args, prog=None, input=None, env=None, cwd=None, timeout=TIMEOUT):
    """Runs conclua (or prog) with argv[0] = "conclua"; returns a Result.
    A run that outlives `timeout` is killed and raises TimeoutExpired."""
    prog = prog or CONCLUA
    t0 = time.monotonic()
    p = subprocess.run(["conclua"] + list(args), executable=prog,
                       input=input.encode() if isinstance(input, str) else input,
                       stdin=None if input is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env if env is not None else clean_env(), cwd=cwd,
                       timeout=timeout)
    return Result(p.returncode, p.stdout.decode(errors="replace"),
                  p.stderr.decode(errors="replace"), time.monotonic() - t0)


@contextlib.contextmanager
def spawn(args, prog=None, cwd=None, env=None):
    """conclua (or prog) running in the background with pipes for stdout and
    stderr; killed (if still running) and reaped when the block ends."""
    p = subprocess.Popen(["conclua"] + list(args), executable=prog or CONCLUA, cwd=cwd,
                         env=env if env is not None else clean_env(),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()


def read_line(stream, timeout=10):
    """One line from a pipe, failing instead of blocking past `timeout`."""
    r, _, _ = select.select([stream], [], [], timeout)
    if not r:
        raise AssertionError("no output line within %ss" % timeout)
    return stream.readline()


class CliTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="conclua-cli-")
        self.dir = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_conclua(self, args, **kw):
        kw.setdefault("cwd", self.dir)
        kw.setdefault("env", clean_env(HOME=self.dir))
        return run(args, **kw)

    def run_lua(self, args, **kw):
        kw.setdefault("cwd", self.dir)
        kw.setdefault("env", clean_env(HOME=self.dir))
        return run(args, prog=LUA, **kw)

    def compare(self, args, mine=None, same_rc=True, same_out=True, same_err=True, **kw):
        """Runs args under conclua and lua5.4 and checks they agree. Returns
        conclua's Result (reusing `mine` when given)."""
        if mine is None:
            mine = self.run_conclua(args, **kw)
        if LUA is None:
            return mine
        kw.setdefault("cwd", self.dir)
        kw.setdefault("env", clean_env(HOME=self.dir))
        ref = run(args, prog=LUA, **kw)
        what = "conclua %r vs lua5.4" % (args,)
        if same_rc:
            self.assertEqual(mine.rc, ref.rc, "%s: exit codes\n%r\n%r" % (what, mine, ref))
        if same_out:
            self.assertEqual(normalize(mine.out), normalize(ref.out), what + ": stdout")
        if same_err:
            self.assertEqual(normalize(mine.err), normalize(ref.err), what + ": stderr")
        return mine


def normalize(text):
    """Table/function addresses differ from run to run."""
    return re.sub(r"0x[0-9a-f]+", "0xADDR", text)


def strip_terminal(data):
    """Terminal output as plain text: escape sequences and CRs removed."""
    return ANSI_RE.sub("", data.decode(errors="replace")).replace("\r", "")


class Pty:
    """conclua (or prog) on a pseudo-terminal, driven like a user would."""

    def __init__(self, args=(), env=None, cwd=None, prog=None, cols=200):
        prog = prog or CONCLUA
        env = env if env is not None else clean_env()
        env.setdefault("TERM", "xterm")
        pid, fd = pty.fork()
        if pid == 0:
            try:
                # the size is set before the program starts: set later from
                # the parent, it reaches the program as a SIGWINCH at any
                # moment, and the line editor redraws the prompt (a
                # difference from lua's session under load)
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
                if cwd:
                    os.chdir(cwd)
                os.execve(prog, ["conclua"] + list(args), env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.raw = b""
        self.pos = 0
        self.status = None

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.fd], [], [], min(left, 0.1))
        if r:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the other side is closed
                data = b""
            if not data:
                return None
            self.raw += data
        return True

    @property
    def text(self):
        return strip_terminal(self.raw)

    def expect(self, pattern, timeout=10):
        """Waits for the regex `pattern` in the output after what earlier
        expects consumed; returns the match. Fails with the output so far."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.text, self.pos)
            if m:
                self.pos = m.end()
                return m
            got = self._fill(deadline)
            if got is False or got is None and not regex.search(self.text, self.pos):
                raise AssertionError("timed out waiting for %r; output after position %d:\n%s"
                                     % (pattern, self.pos, self.text[self.pos:]))

    def settle(self, seconds):
        """Reads whatever arrives during `seconds`."""
        deadline = time.monotonic() + seconds
        while self._fill(deadline) is True:
            pass

    def send(self, s):
        os.write(self.fd, s.encode())

    def sendline(self, s):
        self.send(s + "\n")

    def wait(self, timeout=10):
        """Waits for the process to end (reading its output meanwhile) and
        returns its wait status as returncode (negative: killed by signal)."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)
                break
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("process did not end within %ss; output:\n%s"
                                     % (timeout, self.text))
            self._fill(time.monotonic() + 0.05)
        self.settle(0.1)
        return self.status

    def kill(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.status = -signal.SIGKILL

    def close(self):
        self.kill()
        try:
            os.close(self.fd)
        except OSError:
            pass


def conc_threads_work():
    """Whether conc.thread can run a function and be joined (the runtime may
    still be incomplete while the program is developed)."""
    try:
        r = run(["-e", "local t = conc.thread(function() end) t:join() print('threads ok')"],
                timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return r.rc == 0 and r.out == "threads ok\n" and r.err == ""


def main():
    unittest.main(verbosity=2)


# ThreadSanitizer delivers an asynchronous signal only when the thread next
# enters an intercepted libc call; a busy Lua loop makes none, so Ctrl-C tests
# cannot pass under TSan (CMake sets CONCLUA_TSAN=1 for that build).
needs_signals = unittest.skipIf(os.environ.get("CONCLUA_TSAN") == "1",
                                "signals are not delivered to busy code under TSan")


PROMPT = r"(?m)^> "


class ReplTestCase(CliTestCase):
    """conclua's REPL on a pseudo-terminal, closed when the test ends."""

    def start(self, args=(), home=True, **env):
        e = clean_env(HOME=self.dir if home else None, **env)
        self.repl = Pty(args, env=e, cwd=self.dir)
        self.addCleanup(self.repl.close)
        return self.repl
