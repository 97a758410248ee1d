#!/usr/bin/env python3
"""tests/docs/check_docs.py - the Lua API reference matches the bindings, and
every link in the docs resolves.

What exists comes from two places that check each other:
  - the built program (CONCLUA): tests/docs/probe.lua lists the functions of
    the conc module and, per object type, its methods and metamethods;
  - the binding sources (lib/lua/*.c, the files whose conc_open_* opener
    luaopen_conc calls): every object type they register (conc_lazytype,
    conc_newtype, luaL_newmetatable), every name in their luaL_Reg tables and
    lua_setfield calls of openers and metatable builders, and the field
    names tested by their index functions (strcmp(k, "...") in a function
    named *_index), which the probe then looks up on every object. A type or
    a name that the probe did not reach fails the check (add a probe), so
    the probe cannot go stale. A
    type whose sources give it nothing but generic metamethods (a pool's
    function box, the codec's test buffers) is internal and needs no probe.

What is documented: the level-3 headings of docs/reference/*.md, each one or
more code spans separated by ", ", in one of these forms (receivers such as
`q` are declared in the receivers table of docs/API.md):
    conc.name(args)      a module function      conc.version  a module value
    q:name(args)         a method               t.name        a field
    #q  (__len)    pairs(s)  (__pairs)    s[k] = v  (__newindex)
    s[k]  (__index, only for types with __newindex)
    local g <close> = ...  (__close)
Names starting with "_" (conc._encode) are internal and exempt.

Links: every [text](target) of docs/**/*.md and README.md outside code must
name an existing file, and a #anchor must be a heading of the target (GitHub's
slugs).

Usage: CONCLUA=build/conclua tests/docs/check_docs.py   (exit 1 on problems)
"""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "tests" / "docs" / "probe.lua"
REF_DIR = ROOT / "docs" / "reference"
API_MD = ROOT / "docs" / "API.md"

# Metamethods every conc object has, documented once in API.md's conventions.
GENERIC_META = {"__gc", "__eq", "__tostring", "__name", "__index", "__conctype",
                "__metatable", "__mode"}


# ---- the binding sources ---------------------------------------------------

def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def functions(text):
    """{name: body} of the top-level function definitions of a C file."""
    out = {}
    for m in re.finditer(r"^[A-Za-z_][\w \t\*]*?\b(\w+)\s*\(([^;{}]*)\)\s*\{", text, re.M):
        depth, i = 0, m.end() - 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        out[m.group(1)] = text[m.end():i]
    return out


def reg_arrays(text):
    """{array name: [entry names]} of every luaL_Reg array in a C file."""
    out = {}
    for m in re.finditer(r"luaL_Reg\s+(\w+)\s*\[\s*\]\s*=\s*\{(.*?)\};", text, re.S):
        out[m.group(1)] = re.findall(r'\{\s*"(\w+)"\s*,', m.group(2))
    return out


def split_args(s):
    args, depth, cur = [], 0, ""
    for ch in s:
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
            continue
        depth += ch in "(["
        depth -= ch in ")]"
        cur += ch
    args.append(cur.strip())
    return args


def calls(body, fn):
    """Argument lists of every call of fn in body."""
    out = []
    for m in re.finditer(r"\b%s\s*\(" % fn, body):
        depth, i = 1, m.end()
        while depth and i < len(body):
            depth += body[i] == "("
            depth -= body[i] == ")"
            i += 1
        out.append(split_args(body[m.end():i - 1]))
    return out


class Sources:
    def __init__(self):
        self.problems = []
        core_types = {}
        for f in sorted((ROOT / "lib" / "core").glob("*.c")):
            for m in re.finditer(r'cc_type_t\s+(\w+)\s*=\s*\{\s*(?:\.name\s*=\s*)?"(\w+)"', f.read_text()):
                core_types[m.group(1)] = "conc." + m.group(2)
        self.files = {}
        for f in sorted((ROOT / "lib" / "lua").glob("*.c")):
            text = strip_comments(f.read_text())
            macros = dict(re.findall(r"^#define\s+(\w+)\s+(.+)$", text, re.M))
            self.files[f.name] = (text, functions(text), reg_arrays(text), macros)
        self.core_types = core_types
        lconc = self.files["lconc.c"][1]
        opened = set(re.findall(r"\b(conc_open_\w+)\s*\(L\)", lconc.get("luaopen_conc", "")))
        self.types = {}       # metatable name -> names the sources give it
        self.names = {}       # name -> file, every API name in the tables
        self.fields = {}      # field name -> file
        builders = {}         # builder function -> [metatable names]
        for fname, (text, funcs, arrays, macros) in self.files.items():
            for opener in opened & set(funcs):
                for args in calls(funcs[opener], "conc_lazytype"):
                    t = self.type_name(args[0], macros, fname)
                    if t:
                        builders.setdefault(args[1], []).append(t)
                        self.add_array(args[2], arrays, fname, [t])
        for fname, (text, funcs, arrays, macros) in self.files.items():
            if not opened & set(funcs) and fname != "lconc.c":
                continue
            own = [f for f in funcs if f in opened or f in builders or f == "luaopen_conc"
                   or "luaL_newmetatable" in funcs[f]]
            for fn in own:
                body = funcs[fn]
                # the types this function builds: its own, or its builder's
                owners = list(builders.get(fn, []))
                for args in calls(body, "luaL_newmetatable"):
                    t = macros.get(args[1], args[1]).strip()
                    if t.startswith('"') and t != '"conc.%s"':
                        owners.append(t.strip('"'))
                for t in owners:
                    self.types.setdefault(t, set())
                for args in calls(body, "luaL_setfuncs"):
                    self.add_array(args[1], arrays, fname, owners)
                for name in re.findall(r'lua_setfield\s*\(\s*L\s*,\s*-\d+\s*,\s*"(\w+)"\s*\)', body):
                    self.add_name(name, fname, owners)
                for args in calls(body, "conc_newtype"):
                    if len(args) != 5:
                        continue
                    if args[1] == "type":
                        owners = builders.get(fn, [])
                    else:
                        owners = [self.type_name(args[1], macros, fname)]
                    for t in owners:
                        self.types.setdefault(t, set())
                    for a in (args[2], args[3]):
                        self.add_array(a, arrays, fname, owners)
                    if args[4] != "NULL":
                        for t in owners:
                            self.types.setdefault(t, set()).add(args[4])
            for fn in funcs:
                if fn.endswith("_index"):
                    for k in re.findall(r'strcmp\s*\(\s*k\s*,\s*"(\w+)"\s*\)', funcs[fn]):
                        self.fields.setdefault(k, fname)

    def type_name(self, expr, macros, fname):
        e = macros.get(expr, expr).strip("() &")
        if e not in self.core_types:
            self.problems.append("%s: cannot resolve the object type %r" % (fname, expr))
            return None
        return self.core_types[e]

    def add_array(self, name, arrays, fname, owners=()):
        for n in arrays.get(name, []):
            self.add_name(n, fname, owners)

    def add_name(self, name, fname, owners=()):
        self.names.setdefault(name, fname)
        for t in owners:
            if t:
                self.types.setdefault(t, set()).add(name)

    def public_types(self):
        """The types whose sources give them something to document."""
        return {t for t, names in self.types.items()
                if any(not n.startswith("_") or n not in GENERIC_META and n.startswith("__")
                       for n in names)}


# ---- the built program -----------------------------------------------------

def probe(conclua, fields):
    r = subprocess.run([conclua, str(PROBE)] + sorted(fields), capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    if r.returncode != 0:
        sys.exit("probe.lua failed (%d):\n%s%s" % (r.returncode, r.stdout, r.stderr))
    module, found = {}, {"method": {}, "meta": {}, "field": {}}
    for line in r.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "M":
            module[parts[1]] = parts[2]
        elif parts[0] == "T":
            found[parts[2]].setdefault(parts[1], set()).add(parts[3])
    return module, found["method"], found["meta"], found["field"]


# ---- the reference pages ---------------------------------------------------

def receivers():
    """{receiver: [metatable names]} from the table in docs/API.md."""
    out = {}
    for m in re.finditer(r"^\|\s*`(\w+)`\s*\|\s*((?:`conc\.[\w.]+`[, ]*)+)\|", API_MD.read_text(), re.M):
        out[m.group(1)] = re.findall(r"`(conc\.[\w.]+)`", m.group(2))
    return out


def strip_code_blocks(text):
    """Replaces fenced code blocks by blank lines (keeps line numbers)."""
    out, fence = [], None
    for line in text.split("\n"):
        m = re.match(r"^\s*(```+|~~~+)", line)
        if fence is None and m:
            fence = m.group(1)
            out.append("")
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append("")
        else:
            out.append(line)
    return out


SPAN_FORMS = [
    (re.compile(r"^(conc(?:\.\w+)+)(\(.*\))?$"), "module"),
    (re.compile(r"^(\w+):(\w+)\(.*\)$"), "method"),
    (re.compile(r"^(\w+)\.(\w+)$"), "field"),
    (re.compile(r"^#(\w+)$"), "__len"),
    (re.compile(r"^pairs\((\w+)\)$"), "__pairs"),
    (re.compile(r"^(\w+)\[k\] = v$"), "__newindex"),
    (re.compile(r"^(\w+)\[k\]$"), "__index"),
    (re.compile(r"^local (\w+) <close> = .+$"), "__close"),
]


def documented(problems):
    recv = receivers()
    items = {}  # item -> "file:line"
    if not recv:
        problems.append("docs/API.md: no receivers table (| `q` | `conc.queue` |)")
    for page in sorted(REF_DIR.glob("*.md")):
        rel = page.relative_to(ROOT)
        for n, line in enumerate(strip_code_blocks(page.read_text()), 1):
            if not line.startswith("### "):
                continue
            where = "%s:%d" % (rel, n)
            rest = line[4:].strip()
            spans = re.findall(r"`([^`]+)`", rest)
            if not spans or re.sub(r"`[^`]+`", "", rest).strip(", ") != "":
                problems.append("%s: a reference heading is one or more `code` spans "
                                "separated by commas: %r" % (where, line))
                continue
            for span in spans:
                item = parse_span(span, recv)
                if item is None:
                    problems.append("%s: %r is not a heading form check_docs.py knows, or "
                                    "its receiver is not in docs/API.md's table" % (where, span))
                    continue
                for it in item:
                    if it in items:
                        problems.append("%s: %s is also documented at %s" % (where, show(it), items[it]))
                    items[it] = where
    return items


def parse_span(span, recv):
    for rx, kind in SPAN_FORMS:
        m = rx.match(span)
        if not m:
            continue
        if kind == "module":
            return [("module", m.group(1))]
        types = recv.get(m.group(1))
        if not types:
            return None
        if kind in ("method", "field"):
            return [(kind, t, m.group(2)) for t in types]
        return [("meta", t, kind) for t in types]
    return None


def show(item):
    if item[0] == "module":
        return item[1]
    return "%s %s of %s" % (item[0], item[2], item[1])


# ---- links ---------------------------------------------------------------------

def slugs(path, cache={}):
    if path not in cache:
        seen, out = {}, set()
        for line in strip_code_blocks(path.read_text()):
            m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if not m:
                continue
            s = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            k = seen.get(s, 0)
            seen[s] = k + 1
            out.add(s if k == 0 else "%s-%d" % (s, k))
        cache[path] = out
    return cache[path]


def check_links(problems):
    pages = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    for page in pages:
        rel = page.relative_to(ROOT)
        for n, line in enumerate(strip_code_blocks(page.read_text()), 1):
            line = re.sub(r"`[^`]*`", "", line)
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"^[a-z]+:", target):
                    continue
                path, _, anchor = target.partition("#")
                dest = (page.parent / path).resolve() if path else page
                if not dest.exists():
                    problems.append("%s:%d: link to a missing file: %s" % (rel, n, target))
                elif anchor and dest.suffix == ".md" and anchor not in slugs(dest):
                    problems.append("%s:%d: link to a missing section: %s" % (rel, n, target))


# ---- main ------------------------------------------------------------------------

def main():
    conclua = os.environ.get("CONCLUA") or str(ROOT / "build" / "conclua")
    src = Sources()
    problems = list(src.problems)
    module, methods, metas, fields = probe(conclua, src.fields)

    actual = {}
    for name, ty in module.items():
        if not name.split(".")[-1].startswith("_"):
            actual[("module", name)] = "conc"
    for t, names in methods.items():
        for k in names:
            actual[("method", t, k)] = t
    docs = documented(problems)
    for t, names in metas.items():
        # conc_newtype gives every type a __newindex that only refuses
        # (API.md's conventions say so once); a type whose page documents
        # assignment (a shared table's s[k] = v) has its own
        own = names if ("meta", t, "__newindex") in docs else names - {"__newindex"}
        for k in own - GENERIC_META:
            actual[("meta", t, k)] = t
        if "__newindex" in own:
            actual[("meta", t, "__index")] = t
    for t, names in fields.items():
        for k in names:
            actual[("field", t, k)] = t

    # The probe reached every type and every name of the sources.
    probed = set(methods) | set(metas)
    for t in sorted(src.public_types() - probed):
        problems.append("object type %s is registered in lib/lua but tests/docs/probe.lua "
                        "does not reach it: add a probe" % t)
    reached = {part for n in module for part in n.split(".")[1:]}
    for names in list(methods.values()) + list(metas.values()):
        reached |= names
    for names in fields.values():
        reached |= names
    for name, fname in sorted(src.fields.items()):
        if not any(name in names for names in fields.values()):
            problems.append("%s serves the field %r, which the probe found on no object: add "
                            "a probe for its type in tests/docs/probe.lua" % (fname, name))
    for name, fname in sorted(src.names.items()):
        if not name.startswith("_") and name not in reached:
            problems.append("%s registers %r, which the probe did not find: add a probe "
                            "for its type in tests/docs/probe.lua" % (fname, name))

    for item in sorted(set(actual) - set(docs), key=show):
        problems.append("undocumented: %s (add a ### heading to a docs/reference page)" % show(item))
    for item in sorted(set(docs) - set(actual), key=show):
        problems.append("%s: documents %s, which does not exist" % (docs[item], show(item)))

    check_links(problems)
    for p in problems:
        print(p)
    print("check_docs: %d items in the API, %d documented, %d problem(s)"
          % (len(actual), len(docs), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
