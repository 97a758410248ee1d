#!/usr/bin/env python3
"""tests/docs/run_examples.py - runs every ```lua block of README.md and
docs/**/*.md with the built conclua and checks what it prints.

A block runs as its own script, example.lua in a fresh temporary directory
(so error messages read "example.lua:<line>:"), with a timeout, several at a
time. It passes when it exits with status 0 and its standard output is
exactly the lines announced by its `--> ` comments, in order: a comment
`--> text` after code, or on a line of its own, stands for one line of
output. Print output is compared with runs of whitespace (print's tabs)
folded to one space, and `...` in an expected line matches any text
(addresses, pids, times). A block that prints nothing has no `-->`.

A block that is deliberately not runnable (a fragment) is fenced as
```lua no-run ; keep those rare.

Usage: CONCLUA=build/conclua tests/docs/run_examples.py [file.md ...]
Exit 1 with the file:line of every failing block.
"""
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = float(os.environ.get("CONCLUA_EXAMPLE_TIMEOUT", "30"))
JOBS = int(os.environ.get("CONCLUA_EXAMPLE_JOBS", "2"))


def blocks(path):
    """(first line number, info string, code) of each fenced block."""
    out, fence, start, info, lines = [], None, 0, "", []
    for n, line in enumerate(path.read_text().split("\n"), 1):
        m = re.match(r"^(\s*)(```+|~~~+)\s*(.*)$", line)
        if fence is None and m:
            fence, start, info, lines = m.group(2), n + 1, m.group(3).strip(), []
            indent = len(m.group(1))
        elif fence is not None and line.strip().startswith(fence) and line.strip() == fence:
            out.append((start, info, "\n".join(lines) + "\n"))
            fence = None
        elif fence is not None:
            lines.append(line[indent:] if line[:indent].strip() == "" else line)
    return out


def fold(s):
    return " ".join(s.split())


def expected(code):
    return [fold(m.group(1)) for m in re.finditer(r"--> ?(.*)$", code, re.M)]


def matches(want, got):
    if "..." not in want:
        return want == got
    rx = ".*".join(re.escape(p) for p in want.split("..."))
    return re.fullmatch(rx, got) is not None


def run(conclua, where, code):
    with tempfile.TemporaryDirectory(prefix="conclua-doc-") as d:
        Path(d, "example.lua").write_text(code)
        try:
            r = subprocess.run([conclua, "example.lua"], cwd=d, capture_output=True,
                               text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            return "%s: timed out after %gs\n%s" % (where, TIMEOUT, e.stdout or "")
    got = [fold(l) for l in r.stdout.split("\n")]
    if got and got[-1] == "":
        got.pop()
    want = expected(code)
    problems = []
    if r.returncode != 0:
        problems.append("exit status %d" % r.returncode)
    if len(got) != len(want) or not all(matches(w, g) for w, g in zip(want, got)):
        problems.append("output differs")
        for i in range(max(len(want), len(got))):
            w = want[i] if i < len(want) else "(nothing)"
            g = got[i] if i < len(got) else "(nothing)"
            mark = "  " if i < len(want) and i < len(got) and matches(w, g) else "!!"
            problems.append("%s expected: %s\n   printed:  %s" % (mark, w, g))
    if not problems:
        return None
    return "%s: %s\n--- stderr:\n%s" % (where, "\n".join(problems), r.stderr.rstrip())


def main(argv):
    conclua = os.path.abspath(os.environ.get("CONCLUA") or ROOT / "build" / "conclua")
    files = [Path(a).resolve() for a in argv] or \
        [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    jobs, skipped, bad = [], 0, []
    for f in files:
        for start, info, code in blocks(f):
            words = info.split()
            if not words or words[0] != "lua":
                continue
            name = f.relative_to(ROOT) if f.is_relative_to(ROOT) else f
            where = "%s:%d" % (name, start)
            if words[1:] == ["no-run"]:
                skipped += 1
            elif words[1:]:
                bad.append("%s: unknown fence options %r (only `lua no-run`)" % (where, info))
            else:
                jobs.append((where, code))
    with ThreadPoolExecutor(max_workers=JOBS) as ex:
        results = list(ex.map(lambda j: run(conclua, *j), jobs))
    bad += [r for r in results if r]
    for b in bad:
        print(b, "\n")
    print("run_examples: %d blocks run, %d failed, %d marked no-run"
          % (len(jobs), len([r for r in results if r]), skipped))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
