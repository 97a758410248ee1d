"""The example host program: its state hook reaches every conc thread."""
import os
import subprocess
import sys
import tempfile

HOST = os.environ.get("HOST_EXAMPLE", "build/tests/host_example")


def run(args, timeout=60):
    return subprocess.run([HOST] + args, capture_output=True, text=True, timeout=timeout)


def main():
    r = run([])
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert "sum of scaled values: 100" in r.stdout, r.stdout

    # A script file run through conclua_dofile: errors come back with a
    # traceback and a non-zero exit code.
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write("local t = conc.thread(function() return host_scale(7) end)\n"
                "local ok, v = t:join()\n"
                "print('seven', v)\n"
                "error('host script failed on purpose')\n")
        path = f.name
    try:
        r = run([path])
    finally:
        os.unlink(path)
    assert "seven\t70" in r.stdout, r.stdout
    assert r.returncode == 1, r.returncode
    assert "host script failed on purpose" in r.stderr, r.stderr
    assert "stack traceback" in r.stderr, r.stderr
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL:", e, file=sys.stderr)
        sys.exit(1)
