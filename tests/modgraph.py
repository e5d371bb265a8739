#!/usr/bin/env python3
"""The module graph of a crate, from its `use crate::...`, `use super::...` and inline `crate::`
paths, and the cycles in it (STYLE.md "Module graph": dependencies point one way).

    python3 tests/modgraph.py ready-signal/src [--edges]

A node is a file's module (`a/mod.rs` and `a.rs` are `a`). `pub use` / `pub(crate) use` lines are
re-exports (a facade), not dependencies: a path through one is followed to the module that
defines the item. Test modules (`#[cfg(test)] mod tests`) are left out. Exits 1 when there is a
cycle, printing each strongly connected component.
"""
import os
import re
import sys


def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] in ('mod', 'lib', 'main'):
                rel = rel[:-1]
            if len(rel) == 1 and rel[0] == 'main':
                continue
            mods['::'.join(rel)] = path
    return mods


def strip_tests(text):
    m = re.search(r'#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod \w+\s*\{', text)
    return text[:m.start()] if m else text


def flatten_use(body):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']"""
    body = re.sub(r'\s+', '', body)
    out = []

    def walk(prefix, s):
        depth, start, parts = 0, 0, []
        for i, c in enumerate(s):
            if c == '{':
                depth += 1
            elif c == '}':
                depth -= 1
            elif c == ',' and depth == 0:
                parts.append(s[start:i])
                start = i + 1
        parts.append(s[start:])
        for p in parts:
            if not p:
                continue
            if '{' in p:
                head, rest = p.split('{', 1)
                walk(prefix + head, rest[:-1])
            else:
                out.append(prefix + p.split('as')[0] if '::' in p or prefix else p)
    walk('', body)
    return [re.sub(r'as\w+$', '', o) for o in out]


USE = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?use\s+([^;]+);', re.M)


def main():
    src = sys.argv[1].rstrip('/')
    mods = modules(src)
    texts = {m: strip_tests(open(p).read()) for m, p in mods.items()}
    # Re-exports: module -> {name: target path}
    reexports = {}
    for m, t in texts.items():
        for u in USE.finditer(t):
            if not u.group(1):
                continue
            for path in flatten_use(u.group(3)):
                name = path.split('::')[-1]
                reexports.setdefault(m, {})[name] = absolute(m, path, mods)

    def resolve(path, seen=0):
        """The module that defines what `path` (absolute, `a::b::Item`) names."""
        parts = path.split('::')
        for n in range(len(parts), -1, -1):
            mod = '::'.join(parts[:n])
            if mod in mods:
                rest = parts[n:]
                if rest and rest[0] in reexports.get(mod, {}) and seen < 10:
                    return resolve(reexports[mod][rest[0]], seen + 1)
                return mod
        return None

    edges = {m: set() for m in mods}
    for m, t in texts.items():
        paths = []
        for u in USE.finditer(t):
            if u.group(1):
                continue
            paths += [absolute(m, p, mods) for p in flatten_use(u.group(3))]
        code = USE.sub('', t)
        code = re.sub(r'//[^\n]*', '', code)
        paths += [absolute(m, 'crate::' + p, mods) for p in re.findall(r'\bcrate::((?:\w+::)*\w+)', code)]
        paths += [absolute(m, 'super::' + p, mods) for p in re.findall(r'\bsuper::((?:\w+::)*\w+)', code)]
        # Inline paths through a child module (`sentinel::master(...)` in `redis_store/mod.rs`).
        paths += [absolute(m, p, mods) for p in re.findall(r'(?<![\w:])((?:\w+::)+\w+)', code)
                  if not p.startswith(('crate::', 'super::', 'self::'))]
        for p in paths:
            if p is None:
                continue
            target = resolve(p)
            if target is not None and target != m and target != '':
                edges[m].add(target)
    if '--edges' in sys.argv:
        for m in sorted(edges):
            print(f"{m or '(root)'} -> {', '.join(sorted(edges[m])) or '-'}")
    cycles = [c for c in scc(edges) if len(c) > 1]
    for c in cycles:
        print('cycle:', ' <-> '.join(sorted(c)))
    print(f'{src}: {len(mods)} modules, {sum(len(e) for e in edges.values())} edges, '
          f'{len(cycles)} cycles')
    sys.exit(1 if cycles else 0)


def absolute(m, path, mods):
    parts = path.split('::')
    if parts[0] == 'crate':
        return '::'.join(parts[1:])
    here = m.split('::') if m else []
    if parts[0] in ('super', 'self'):
        while parts and parts[0] in ('super', 'self'):
            if parts[0] == 'super':
                here = here[:-1]
            parts = parts[1:]
        return '::'.join(here + parts)
    # A path relative to the current module (`use cluster::ClusterReader` in a mod.rs).
    child = '::'.join(here + [parts[0]])
    if child in mods:
        return '::'.join(here + parts)
    return None  # an external crate or std


def scc(edges):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
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
            out.append(comp)
    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == '__main__':
    main()
