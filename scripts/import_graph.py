#!/usr/bin/env python3
"""The module import graph of ward's library crate, and its circles.

    scripts/import_graph.py [--src DIR] [--edges]

Prints every strongly connected component of more than one module (an
import circle) and exits 1 if there is any; with `--edges`, prints the
edge list instead, one `from<TAB>to` per line, sorted (for the Rust
architecture test that re-implements this check, and for diffing).

Why: a module that is imported from below cannot be understood, tested or
moved on its own. Every dependency should point one way.

Rules (kept deliberately simple, so another implementation can match them):

- Nodes are files of the library crate. `src/lib.rs` is `crate`;
  `src/a/b.rs` (or `src/a/b/mod.rs`) is `a::b`; `a.rs` with a directory
  `a/` is the parent `a` of `a::b`. `src/main.rs` and `src/bin/` are a
  separate crate on top of the library (they import `ward::`, never the
  reverse) and are not nodes. Inline modules (`mod tests { ... }`) belong
  to their file.
- Comments, string and character literals are ignored: a path in a doc
  comment is not a dependency.
- An edge `m -> n` is a path naming module `n` or an item in it, written in
  `m`: `use crate::n::...`, `crate::n::item(...)` anywhere, `super::...`
  and `self::...` (resolved from `m`, counting inline modules for
  `super`), `use` trees with braces, `self` and `as`, a name imported as a
  module alias (`use crate::store; store::keys::X` names `store::keys`),
  and a child module declared in `m` (`mod seed;` then `seed::load`). A
  path names the longest prefix that is a node: `crate::store::Hash` names
  `store`, `crate::store::keys::KeyNames` names `store::keys`.
- Ignored: an edge to the module itself, and an edge from a module to one
  of its own ancestors (`store::records` using `super::StoreError`): a
  child naturally uses its parent's types. An edge from a parent to its
  child counts, so `store -> store::seed -> session -> store` is a circle.
"""

import argparse
import re
import signal
import sys
from pathlib import Path

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|::|[{}();,*]|.", re.S)
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


def strip(text):
    """The source with comments, strings and char literals blanked."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        elif (m := re.match(r'b?r(#*)"', text[i:])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            i = n if j < 0 else j + len(end)
            out.append(' "" ')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append(' "" ')
        elif c == "'":
            # A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:], re.S)
            if m:
                i += m.end()
                out.append(" ' ")
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(path, src):
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts == ["lib"]:
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def use_tree(tokens, i, prefix, out):
    """Parses one use tree at tokens[i]; appends (path, alias) pairs."""
    path = list(prefix)
    while i < len(tokens):
        t = tokens[i]
        if t == "{":
            i += 1
            while i < len(tokens) and tokens[i] != "}":
                i = use_tree(tokens, i, path, out)
                if i < len(tokens) and tokens[i] == ",":
                    i += 1
            return i + 1
        if t == "*":
            out.append((path, None))
            return i + 1
        if IDENT.match(t):
            if t == "self" and path:
                alias = path[-1]
            else:
                path.append(t)
                alias = t
            i += 1
            if i < len(tokens) and tokens[i] == "::":
                i += 1
                continue
            if i + 1 < len(tokens) and tokens[i] == "as":
                alias = tokens[i + 1]
                i += 2
            out.append((path, alias))
            return i
        return i + 1
    return i


def scan(text):
    """(use paths, other paths, child mods) of one file; each path is a
    (token list, inline depth) pair."""
    tokens = [t for t in TOKEN.findall(strip(text)) if not t.isspace()]
    uses, paths, children = [], [], set()
    depth_stack = []  # brace depth of each open inline module
    brace = 0
    i = 0
    while i < len(tokens):
        t = tokens[i]
        inline = len(depth_stack)
        if t == "{":
            brace += 1
        elif t == "}":
            brace -= 1
            if depth_stack and depth_stack[-1] == brace:
                depth_stack.pop()
        elif t == "mod" and i + 2 < len(tokens) and IDENT.match(tokens[i + 1]):
            if tokens[i + 2] == ";":
                if inline == 0:
                    children.add(tokens[i + 1])
            elif tokens[i + 2] == "{":
                depth_stack.append(brace)
                brace += 1
                i += 3
                continue
        elif t == "use" and (i == 0 or tokens[i - 1] != "::"):
            out = []
            i = use_tree(tokens, i + 1, [], out)
            uses.extend((p, a, inline) for p, a in out)
            continue
        elif IDENT.match(t) and (i == 0 or tokens[i - 1] != "::") and i + 1 < len(tokens) and tokens[i + 1] == "::":
            path = [t]
            j = i + 1
            while j + 1 < len(tokens) and tokens[j] == "::" and IDENT.match(tokens[j + 1]):
                path.append(tokens[j + 1])
                j += 2
            paths.append((path, inline))
            i = j
            continue
        i += 1
    return uses, paths, children


def resolve(path, here, inline, modules, aliases, children):
    """(node, whole) for a path: the node it names (None for external
    crates, std and locals) and whether the whole path is that module."""
    head, rest = path[0], list(path[1:])
    if head == "crate":
        base = ()
    elif head == "self":
        base = here
    elif head == "super":
        base, ups = here, inline
        while True:
            if ups:
                ups -= 1  # out of an inline module, still in this file
            elif base:
                base = base[:-1]
            else:
                return None, False
            if rest and rest[0] == "super":
                rest.pop(0)
            else:
                break
    elif head in aliases:
        base = aliases[head]
    elif head in children:
        base = here + (head,)
    else:
        return None, False
    if base not in modules:
        return None, False
    node, used = base, 0
    for part in rest:
        if node + (part,) not in modules:
            break
        node, used = node + (part,), used + 1
    return node, used == len(rest)


def graph(src):
    files = sorted(
        p for p in src.rglob("*.rs")
        if p.relative_to(src).parts[0] != "bin" and p.relative_to(src) != Path("main.rs")
    )
    modules = {module_of(p, src): p for p in files}
    edges = set()
    for here, path in modules.items():
        uses, paths, children = scan(path.read_text())
        aliases, found = {}, []
        for p, alias, inline in uses:
            node, whole = resolve(p, here, inline, modules, {}, children)
            if node is None:
                continue
            found.append(node)
            if whole and alias not in (None, "_"):
                aliases[alias] = node  # `use crate::store;` names a module
        for p, inline in paths:
            node, _ = resolve(p, here, inline, modules, aliases, children)
            if node is not None:
                found.append(node)
        for node in found:
            if node == here or here[: len(node)] == node:
                continue  # itself, or one of its ancestors
            edges.add((here, node))
    return modules, edges


def components(nodes, edges):
    """Tarjan's strongly connected components."""
    succ = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def name(module):
    return "::".join(module) or "crate"


def main():
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `--edges | head` is fine
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=str(Path(__file__).resolve().parent.parent / "src"))
    ap.add_argument("--edges", action="store_true", help="print the edge list (from<TAB>to)")
    args = ap.parse_args()
    modules, edges = graph(Path(args.src))
    if args.edges:
        for a, b in sorted(edges):
            print(f"{name(a)}\t{name(b)}")
        return 0
    circles = components(modules, edges)
    print(f"{len(modules)} modules, {len(edges)} edges, {len(circles)} circles")
    for comp in circles:
        members = set(comp)
        print("circle: " + ", ".join(name(m) for m in comp))
        for a, b in sorted(edges):
            if a in members and b in members:
                print(f"  {name(a)} -> {name(b)}")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
