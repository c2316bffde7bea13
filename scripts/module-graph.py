#!/usr/bin/env python3
"""Prints the module graph of Flowscope's core crate (`shared/`, flowscope-core) and fails on a cycle.

Nodes are the crate's top-level modules (`crate::aggregate`, `crate::ports`, ...). An edge A -> B means
non-test code under A names a path `crate::B...` (in a `use`, or inline) or `super::B` from A's root
file. Test code is left out: `#[cfg(test)]` items and files under a `tests` module, since tests may use
any layer (e.g. the in-memory adapters). Doc comments (`//!`, `///`) and `//` comments are ignored.

Every other path counts, re-exports (`pub use crate::x::Y`) included: a re-export at an old path is a
dependency like any other, so the layering holds for whoever imports through it.

Also checks the declared layers (LAYERS below, bottom first): a module may only depend on modules in
its own layer or below. A module missing from LAYERS fails the check, so a new module gets a place.

Usage: scripts/module-graph.py [--dot]   (exit 1 on a cycle or a layer violation)
Standard library only; runs in well under a second.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared", "src")

# Bottom first. Keep in sync with docs/architecture.md.
LAYERS = [
    ("domain", ["model", "sketch", "spans", "duration", "domain", "profiles"]),
    ("ports", ["ports"]),
    ("processing", ["registry", "record", "otlp", "auth", "cardinality", "ingest", "aggregate", "traces", "alerts", "live",
                    "query", "pipeline", "probing", "scrape", "profiling", "expr", "telemetry", "key_limits", "tokens"]),
    ("http", ["http"]),
    ("adapters", ["embedded", "aws", "testing"]),
]

PATH_RE = re.compile(r"\bcrate::(?:\{\s*)?([a-z_][a-z0-9_]*)")
GROUP_RE = re.compile(r"\bcrate::\{([^}]*)\}", re.S)
SUPER_RE = re.compile(r"\bsuper::(?:\{\s*)?([a-z_][a-z0-9_]*)")


def strip_comments(text):
    # Line comments (doc comments included); string literals rarely contain `crate::`.
    return re.sub(r"//[^\n]*", "", text)


def strip_test_items(text):
    """Removes `#[cfg(test)]` items (a `mod tests { ... }` block or a single `mod x;`/`use ...;`)."""
    out = []
    i = 0
    marker = re.compile(r"#\[cfg\(test\)\]")
    while True:
        m = marker.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:m.start()])
        j = m.end()
        # The item ends at the first `;` before any `{`, or at the matching `}`.
        brace = text.find("{", j)
        semi = text.find(";", j)
        if semi != -1 and (brace == -1 or semi < brace):
            i = semi + 1
            continue
        if brace == -1:
            return "".join(out)
        depth = 0
        k = brace
        while k < len(text):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        i = k + 1


def module_of(rel):
    parts = rel.split(os.sep)
    if len(parts) == 1:
        return os.path.splitext(parts[0])[0]
    return parts[0]


def is_test_file(rel):
    parts = os.path.splitext(rel)[0].split(os.sep)
    return "tests" in parts[1:] or parts[-1] == "tests"


def main():
    modules = set()
    edges = {}
    for dirpath, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, ROOT)
            if rel == "lib.rs":
                continue
            mod = module_of(rel)
            modules.add(mod)
            if is_test_file(rel):
                continue
            with open(path, encoding="utf-8") as f:
                text = strip_test_items(strip_comments(f.read()))
            targets = set(PATH_RE.findall(text))
            for group in GROUP_RE.findall(text):
                targets.update(re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group))
            # `super::x` from a top-level module's own files stays inside it, except from its root file
            # (`foo.rs` or a one-level `foo/mod.rs` has no parent module but the crate root).
            if os.sep not in rel:
                targets.update(SUPER_RE.findall(text))
            for target in targets:
                if target != mod and target not in ("self", "super"):
                    edges.setdefault(mod, set()).add(target)
    for mod in list(edges):
        edges[mod] &= modules

    layer_of = {}
    for index, (layer, members) in enumerate(LAYERS):
        for member in members:
            layer_of[member] = (index, layer)

    if "--dot" in sys.argv:
        print("digraph flowscope_core {")
        for mod in sorted(edges):
            for target in sorted(edges[mod]):
                print(f'  "{mod}" -> "{target}";')
        print("}")
    else:
        print("flowscope-core module graph (module -> modules it uses), by layer, bottom first:")
        for index, (layer, members) in enumerate(LAYERS):
            print(f"[{index}] {layer}")
            for mod in members:
                if mod in modules:
                    print(f"    {mod:<12} -> {', '.join(sorted(edges.get(mod, ()))) or '-'}")

    problems = []
    for mod in sorted(modules - set(layer_of)):
        problems.append(f"module `{mod}` has no layer: add it to LAYERS in {os.path.basename(__file__)}")
    for mod in sorted(edges):
        for target in sorted(edges[mod]):
            if mod in layer_of and target in layer_of and layer_of[target][0] > layer_of[mod][0]:
                problems.append(
                    f"layer violation: {mod} ({layer_of[mod][1]}) uses {target} ({layer_of[target][1]})")

    # Cycles: Tarjan's strongly connected components.
    index_of, low, stack, on_stack, sccs = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index_of[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index_of:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index_of[w])
        if low[v] == index_of[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index_of:
            visit(v)
    for scc in sccs:
        inner = [f"{a} -> {b}" for a in scc for b in sorted(edges.get(a, ())) if b in scc]
        problems.append(f"import cycle among {{{', '.join(scc)}}}: {'; '.join(inner)}")

    if problems:
        print()
        for problem in problems:
            print(f"FAIL: {problem}")
        return 1
    print(f"\nok: {len(modules)} modules, no cycle, every dependency points to its own layer or below")
    return 0


if __name__ == "__main__":
    sys.exit(main())
