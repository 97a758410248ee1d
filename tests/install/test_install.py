"""`cmake --install` into a temporary prefix, then the example hosts built
against that copy only: queue_host with pkg-config, both hosts with
find_package(conclua); each one runs. Also checks what the prefix holds
(header, both libraries with the soname, conc.so in Lua's module directory,
the program, conclua.pc, the CMake package, the man page) and, outside
sanitizer builds, that stock lua5.4 loads the installed conc.so.

Environment: CONCLUA_BUILD_DIR (the build tree to install), CONCLUA_SAN_FLAGS
(compiler flags of a sanitizer build, given to the example builds too)."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("CONCLUA_BUILD_DIR", os.path.join(ROOT, "build"))
SAN = os.environ.get("CONCLUA_SAN_FLAGS", "").split()


def sh(cmd, timeout=120, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, (cmd, r.returncode, r.stdout[-2000:], r.stderr[-4000:])
    return r.stdout


def one(pattern):
    found = glob.glob(pattern, recursive=True)
    assert len(found) == 1, (pattern, found)
    return found[0]


def check_layout(prefix):
    assert os.path.isfile(os.path.join(prefix, "include", "conclua.h"))
    assert os.access(os.path.join(prefix, "bin", "conclua"), os.X_OK)
    libdir = os.path.dirname(one(os.path.join(prefix, "lib*", "**", "libconclua.a")))
    so = os.path.join(libdir, "libconclua.so")
    assert os.path.islink(so) and os.readlink(so) == "libconclua.so.0", so
    assert "SONAME" in sh(["readelf", "-d", so]) and "[libconclua.so.0]" in sh(["readelf", "-d", so])
    cmod = one(os.path.join(prefix, "lib*", "**", "lua", "5.4", "conc.so"))
    assert "NODELETE" in sh(["readelf", "-d", cmod]), "conc.so must be linked -z nodelete"
    pc = one(os.path.join(libdir, "pkgconfig", "conclua.pc"))
    one(os.path.join(libdir, "cmake", "conclua", "conclua-config.cmake"))
    one(os.path.join(libdir, "cmake", "conclua", "conclua-config-version.cmake"))
    with open(one(os.path.join(prefix, "share", "man", "man1", "conclua.1"))) as f:
        assert f.read().startswith(".TH CONCLUA 1")
    # Only the public names are exported from the shared library.
    exported = sh(["nm", "-D", "--defined-only", so]).split()
    names = [w for w in exported if w.isidentifier() and len(w) > 1]
    bad = [n for n in names if not (n.startswith("conclua_") or n == "luaopen_conc")]
    assert not bad, bad
    # Every global symbol of the static library carries a project prefix, so
    # none can clash with a host's own.
    syms = [l.split()[-1] for l in sh(["nm", "-g", "--defined-only",
                                        os.path.join(libdir, "libconclua.a")]).splitlines()
            if len(l.split()) == 3]
    bad = [n for n in syms if not n.startswith(("cc_", "conc_", "conclua_")) and
           n != "luaopen_conc" and
           not n.startswith("__")]  # the compiler's own (e.g. ASan's __odr_asan.*)
    assert syms and not bad, bad
    return libdir, pc, cmod


def build_with_pkgconfig(prefix, libdir, work):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(os.path.join(libdir, "pkgconfig", "x")))
    inc = sh(["pkg-config", "--variable=includedir", "conclua"], env=env).strip()
    assert os.path.realpath(inc) == os.path.realpath(os.path.join(prefix, "include")), inc
    flags = sh(["pkg-config", "--cflags", "--libs", "conclua"], env=env).split()
    src = shutil.copy(os.path.join(ROOT, "examples", "queue_host.c"), work)
    exe = os.path.join(work, "queue_host_pc")
    sh(["cc", "-std=c11", "-Wall", "-Werror"] + SAN + ["-o", exe, src] + flags + ["-pthread"])
    return exe


def build_with_cmake(prefix, work):
    src = shutil.copytree(os.path.join(ROOT, "examples"), os.path.join(work, "examples"))
    b = os.path.join(work, "b")
    flags = " ".join(SAN)
    sh(["cmake", "-S", src, "-B", b, "-DCMAKE_PREFIX_PATH=" + prefix,
        "-DCMAKE_C_FLAGS=" + flags, "-DCMAKE_EXE_LINKER_FLAGS=" + flags])
    with open(os.path.join(b, "CMakeCache.txt")) as f:
        cache = f.read()
    assert "conclua_DIR:PATH=" + os.path.realpath(prefix) in cache or \
        "conclua_DIR:PATH=" + prefix in cache, "find_package found another conclua"
    sh(["cmake", "--build", b, "-j2"])
    return os.path.join(b, "queue_host"), os.path.join(b, "hook_host")


def run_host(exe, libdir, expect):
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)
    out = sh([exe], timeout=60, env=env)
    assert expect in out, (exe, out)
    deps = sh(["ldd", exe], env=env)
    line = [l for l in deps.splitlines() if "libconclua" in l]
    assert line and os.path.realpath(libdir) in os.path.realpath(line[0].split("=>")[1].split()[0]), deps


def main():
    with tempfile.TemporaryDirectory(prefix="conclua-install-") as tmp:
        prefix = os.path.join(tmp, "prefix")
        work = os.path.join(tmp, "work")
        os.mkdir(work)
        sh(["cmake", "--install", BUILD, "--prefix", prefix])
        libdir, pc, cmod = check_layout(prefix)

        exe = build_with_pkgconfig(prefix, libdir, work)
        run_host(exe, libdir, "sum of squares: 83583500 (expected 83583500)")
        queue_host, hook_host = build_with_cmake(prefix, work)
        run_host(queue_host, libdir, "sum of squares: 83583500 (expected 83583500)")
        run_host(hook_host, libdir, "sum of scaled values: 100")

        if not os.environ.get("CONCLUA_SANITIZED"):
            out = sh(["lua5.4", "-e",
                      "local dir = os.getenv('CMOD_DIR')\n"
                      "package.cpath = dir .. '/?.so'; local conc = require 'conc'\n"
                      "assert(package.searchpath('conc', package.cpath):find(dir, 1, true))\n"
                      "print(conc.thread(function(a) return a * 2 end, 21):join())"],
                     timeout=60, env=dict(os.environ, CMOD_DIR=os.path.dirname(cmod)))
            assert out.split() == ["true", "42"], out
            out = sh([os.path.join(prefix, "bin", "conclua"), "-e", "print(conc.version)"])
            assert out.strip() == sh(["pkg-config", "--modversion", pc]).strip(), out
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL:", e, file=sys.stderr)
        sys.exit(1)
