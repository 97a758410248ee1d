"""`luarocks make` of conclua-scm-1.rockspec into a local tree, then stock
lua5.4 requires conc from that tree and runs a thread.

The rock is built from a copy of the sources (CMakeLists.txt, cmake/, lib/,
the rockspec) so that luarocks' build directory never lands in the checkout,
where other builds may be running."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROCKSPEC = "conclua-scm-1.rockspec"


def sh(cmd, timeout=120, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, (cmd, r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    return r.stdout


def main():
    assert shutil.which("luarocks"), "luarocks is not installed (.ci/deps installs it)"
    with tempfile.TemporaryDirectory(prefix="conclua-rock-") as tmp:
        src = os.path.join(tmp, "src")
        os.mkdir(src)
        for d in ("cmake", "lib"):
            shutil.copytree(os.path.join(ROOT, d), os.path.join(src, d))
        for f in ("CMakeLists.txt", ROCKSPEC):
            shutil.copy(os.path.join(ROOT, f), src)
        tree = os.path.join(tmp, "tree")
        env = dict(os.environ, HOME=tmp, CMAKE_BUILD_PARALLEL_LEVEL="2")
        sh(["luarocks", "--lua-version", "5.4", "make", "--tree", tree, ROCKSPEC],
           timeout=400, cwd=src, env=env)
        out = sh(["luarocks", "--lua-version", "5.4", "list", "--tree", tree, "--porcelain"], env=env)
        assert out.startswith("conclua\tscm-1"), out

        found = glob.glob(os.path.join(tree, "lib", "lua", "5.4", "conc.so"))
        assert len(found) == 1, os.listdir(tree)
        so = found[0]
        assert "NODELETE" in sh(["readelf", "-d", so]), "conc.so must be linked -z nodelete"
        cpath = os.path.join(tree, "lib", "lua", "5.4", "?.so")
        out = sh(["lua5.4", "-e",
                  "local cp = os.getenv('ROCK_CPATH')\n"
                  "package.cpath = cp .. ';' .. package.cpath\n"
                  "local conc = require 'conc'\n"
                  "assert(package.searchpath('conc', package.cpath) == cp:gsub('?', 'conc'))\n"
                  "local q = conc.queue()\n"
                  "local t = conc.thread(function(n) q:put(n * 2); return 'done' end, 21)\n"
                  "local ok, r = t:join()\n"
                  "print(ok, r, q:get(), conc.version)"],
                 timeout=60, env=dict(os.environ, ROCK_CPATH=cpath))
        words = out.split()
        assert words[:3] == ["true", "done", "42"], out
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL:", e, file=sys.stderr)
        sys.exit(1)
