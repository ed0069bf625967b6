#!/usr/bin/env python3
"""The layering rules of src/, checked on the built objects and the sources.

1. No call circles between files: file A uses a symbol defined in file B
   (nm: B defines it, A has it undefined) is an edge A -> B; every strongly
   connected set of more than one file is a circle. Function pointers that a
   file registers downwards (callbacks, the route table's handlers) are
   references too: the rule counts them.
2. No include circles between the headers and sources of src/.
3. No file of src/ over MAX_LINES lines (generated code lives in build/gen).
4. Names: every global symbol of the library is either public (ap_*, and
   exported by libalphapulse.so: AP_API in include/) or internal (ap__*,
   hidden), or generated (onnx__*, protobuf-c).

Usage: tools/check_layers.py [BUILD_DIR]   (default build; needs `make lib`)
Prints every violation and exits 1 if there is one.
"""
import os
import re
import subprocess
import sys

MAX_LINES = 700
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sccs(graph):
    """Tarjan's strongly connected components of {node: set(nodes)}."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def nm(args):
    return subprocess.run(["nm"] + args, capture_output=True, text=True, check=True).stdout


def call_graph(build):
    objdir = os.path.join(ROOT, build, "obj", "src")
    objs = live_objects(objdir)
    if not objs:
        sys.exit("check_layers: no objects under %s (run make lib first)" % objdir)
    defined, undefined = {}, {}
    for o in sorted(objs):
        name = os.path.relpath(o, objdir)[:-2] + ".c"
        undefined[name] = set()
        for line in nm(["--defined-only", "-g", o]).splitlines():
            parts = line.split()
            if len(parts) == 3:
                defined[parts[2]] = name
        for line in nm(["-u", o]).splitlines():
            undefined[name].add(line.split()[-1])
    graph, why = {}, {}
    for f, syms in undefined.items():
        graph.setdefault(f, set())
        for s in syms:
            g = defined.get(s)
            if g and g != f:
                graph[f].add(g)
                why.setdefault((f, g), []).append(s)
    return graph, why


def defined_by(build):
    """Global symbols of the library's objects (not the CLI's)."""
    objdir = os.path.join(ROOT, build, "obj", "src")
    out = {}
    for o in live_objects(objdir):
        rel = os.path.relpath(o, objdir)
        if rel.startswith("cli/"):
            continue
        out["src/" + rel[:-2] + ".c"] = set(
            l.split()[2] for l in nm(["--defined-only", "-g", o]).splitlines()
            if len(l.split()) == 3)
    return out


def live_objects(objdir):
    """The objects under objdir whose source file still exists (a build
    directory keeps the objects of deleted files)."""
    objs = []
    for d, _, files in os.walk(objdir):
        for f in files:
            o = os.path.join(d, f)
            src = os.path.join(ROOT, "src", os.path.relpath(o, objdir)[:-2] + ".c")
            if f.endswith(".o") and os.path.exists(src):
                objs.append(o)
    return sorted(objs)


def include_graph():
    src = os.path.join(ROOT, "src")
    graph = {}
    for d, _, files in os.walk(src):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(d, f)
            rel = os.path.relpath(path, src)
            graph[rel] = set()
            for m in re.finditer(r'^#include "([^"]+)"', open(path).read(), re.M):
                inc = m.group(1)
                if os.path.exists(os.path.join(src, inc)):
                    graph[rel].add(inc)
    return graph


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    bad = 0
    graph, why = call_graph(build)
    edges = sum(len(v) for v in graph.values())
    for comp in sccs(graph):
        bad += 1
        print("call circle between %s:" % ", ".join(comp))
        for a in comp:
            for b in comp:
                if (a, b) in why:
                    print("  %s -> %s: %s" % (a, b, " ".join(sorted(why[(a, b)])[:6])))
    inc = include_graph()
    for comp in sccs(inc):
        bad += 1
        print("include circle between %s" % ", ".join(comp))
    long_files = 0
    for f in sorted(inc):
        n = sum(1 for _ in open(os.path.join(ROOT, "src", f)))
        if n > MAX_LINES:
            bad += 1
            long_files += 1
            print("%s: %d lines (more than %d)" % (f, n, MAX_LINES))
    so = os.path.join(ROOT, build, "libalphapulse.so")
    if os.path.exists(so):
        exported = set(l.split()[-1] for l in nm(["-D", "--defined-only", so]).splitlines())
        for f, syms in sorted(defined_by(build).items()):
            for sym in sorted(syms):
                public = sym.startswith("ap_") and not sym.startswith("ap__")
                if public and sym not in exported:
                    bad += 1
                    print("%s: %s is named like public API but not exported (AP_API), "
                          "or internal without the ap__ prefix" % (f, sym))
                elif sym in exported and not public:
                    bad += 1
                    print("%s: %s is exported but not public API" % (f, sym))
                elif not public and not sym.startswith(("ap__", "onnx__")):
                    bad += 1
                    print("%s: global symbol %s has neither the ap_ nor the ap__ prefix" % (f, sym))
    print("check_layers: %d files, %d call edges, %d include edges: %s" %
          (len(graph), edges, sum(len(v) for v in inc.values()),
           "ok" if not bad else "%d problem(s)" % bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
