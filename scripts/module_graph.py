#!/usr/bin/env python3
"""Checks that the crate's modules import one another without cycles.

Every `crate::…`, `super::…` and `self::…` path in src/ (in `use` items, grouped or not, and
inline in code) is resolved to the module it names. An edge from module A to module B is
lifted to the pair of siblings under their closest common ancestor (src/http/native.rs using
crate::service::manage is an edge http -> service; src/service/credential.rs using
crate::service::verdict is an edge credential -> verdict). A module using its own parent or
child is not an edge: a folder's mod.rs and its files are one unit seen from outside. The
script prints the edges between top-level modules and fails if any group of siblings has a
cycle, naming the files behind each edge of it.

Usage: python3 scripts/module_graph.py [--src DIR] [--quiet]
"""
import argparse
import collections
import os
import re
import sys


def module_of(path, src):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip_comments(text):
    """The code of `text` with comments, strings and char literals blanked out."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            depth = 0
            while i < n:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                    if depth == 0:
                        break
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'":
            if i + 1 < n and text[i + 1] == "\\":
                end = text.find("'", i + 2)
                i = end + 1
            elif i + 2 < n and text[i + 2] == "'":
                i += 3
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use(tree):
    """Flattens `a::{b, c::{d, e}}` into a::b, a::c::d, a::c::e."""
    tree = tree.strip()
    depth, start = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix = tree[:start].rstrip(":").strip()
                inner, parts, level, last = tree[start + 1 : i], [], 0, 0
                for j, c in enumerate(inner):
                    if c == "{":
                        level += 1
                    elif c == "}":
                        level -= 1
                    elif c == "," and level == 0:
                        parts.append(inner[last:j])
                        last = j + 1
                parts.append(inner[last:])
                out = []
                for p in parts:
                    p = p.strip()
                    if not p:
                        continue
                    for sub in expand_use(p):
                        out.append(prefix + "::" + sub if prefix else sub)
                return out
    return [tree.split(" as ")[0].strip()]


def references(text):
    refs = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        refs.extend(expand_use(m.group(1)))
    for m in re.finditer(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
        refs.append(m.group(1))
    return refs


def resolve(ref, here, modules, is_dir_module):
    parts = ref.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    else:
        # `super` in a.rs (module a) is a's parent; in a/mod.rs too.
        base = here
        rest = parts
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    target = base
    for name in rest:
        if target + (name,) in modules:
            target = target + (name,)
        else:
            break
    return target


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(os.path.dirname(__file__), "..", "src"))
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    src = os.path.abspath(args.src)
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(root, n)
                files[module_of(p, src)] = p
    modules = set(files)
    # main.rs is the binary: it uses the library by name and is not part of the graph.
    files.pop((), None)
    files[()] = os.path.join(src, "lib.rs")
    edges = collections.defaultdict(set)  # (parent, a, b) -> files
    for mod, path in files.items():
        text = strip_comments(open(path, encoding="utf-8").read())
        for ref in references(text):
            target = resolve(ref, mod, modules, None)
            common = 0
            while common < min(len(mod), len(target)) and mod[common] == target[common]:
                common += 1
            if common == len(mod) or common == len(target):
                continue  # parent and child: one unit seen from outside
            parent = mod[:common]
            edges[(parent, mod[common], target[common])].add(os.path.relpath(path, os.path.dirname(src)))
    groups = collections.defaultdict(lambda: collections.defaultdict(set))
    for (parent, a, b) in edges:
        groups[parent][a].add(b)
    cycles = []
    for parent, graph in groups.items():
        # Tarjan's strongly connected components.
        index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

        def strong(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in graph.get(v, ()):
                if w not in index:
                    strong(w)
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
                if len(comp) > 1:
                    out.append(comp)

        for v in list(graph):
            if v not in index:
                strong(v)
        for comp in out:
            cycles.append((parent, sorted(comp)))
    if not args.quiet:
        top = groups.get((), {})
        print("edges between top-level modules (importer -> imported):")
        for a in sorted(top):
            print(f"  {a:8} -> {', '.join(sorted(top[a]))}")
        inner = sum(len(v) for p, g in groups.items() if p for v in g.values())
        print(f"edges between sibling modules inside folders: {inner}")
    if cycles:
        for parent, comp in cycles:
            where = "::".join(("crate",) + parent)
            print(f"CYCLE in {where}: {' <-> '.join(comp)}")
            for a in comp:
                for b in comp:
                    for f in sorted(edges.get((parent, a, b), ())):
                        print(f"    {a} -> {b}: {f}")
        return 1
    print(f"no import cycles among {len(modules) - 1} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
