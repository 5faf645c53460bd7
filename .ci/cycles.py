#!/usr/bin/env python3
"""Module import graph of the library (one node per file), from `crate::` and `super::` paths
outside test code; prints every cycle."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
files = {}
for dp, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            rel = os.path.relpath(os.path.join(dp, f), root)
            if rel in ("lib.rs", "main.rs") or rel.startswith("cli"):
                continue
            parts = rel.removesuffix('.rs').split(os.sep)
            if parts[-1] == 'mod':
                parts = parts[:-1]
            files['::'.join(parts)] = os.path.join(dp, f)
mods = set(files)
def resolve(path):
    parts = path.split('::')
    for n in range(len(parts), 0, -1):
        if '::'.join(parts[:n]) in mods:
            return '::'.join(parts[:n])
    return None
edges = {}
for mod, path in files.items():
    text = open(path).read().split('#[cfg(test)]')[0]
    parent = mod.rsplit('::', 1)[0] if '::' in mod else ''
    refs = re.findall(r'crate::([a-z_:]+)', text)
    refs += [(parent + '::' if parent else '') + r for r in re.findall(r'super::([a-z_:]+)', text)]
    # `use crate::x::{a, b}` names modules a and b when they exist
    for base, group in re.findall(r'crate::([a-z_:]+)::\{([^}]*)\}', text):
        refs += [base + '::' + g.strip().split('::')[0] for g in group.split(',') if g.strip()]
    for r in refs:
        target = resolve(r.strip(':'))
        if target and target != mod and not mod.startswith(target + '::') and not target.startswith(mod + '::'):
            edges.setdefault(mod, set()).add(target)
cycles = set()
def dfs(start, node, path):
    for n in edges.get(node, ()):
        if n == start:
            i = path.index(min(path)); cycles.add(tuple(path[i:] + path[:i]))
        elif n not in path and len(path) < 8:
            dfs(start, n, path + [n])
for m in list(edges):
    dfs(m, m, [m])
for c in sorted(cycles):
    print(' -> '.join(c + (c[0],)))
print(f"{len(cycles)} import cycles among {len(mods)} modules ({sum(map(len, edges.values()))} edges)")
# The binary's command files import `cli/flags.rs` (and each other), never the dispatcher.
bad = []
for dp, _, fs in os.walk(os.path.join(root, 'cli')):
    for f in fs:
        path = os.path.join(dp, f)
        if f.endswith('.rs') and path != os.path.join(root, 'cli', 'mod.rs'):
            text = open(path).read().split('#[cfg(test)]')[0]
            for m in re.findall(r'crate::cli::([a-z_]+)', text):
                if m != 'flags':
                    bad.append(f"{path}: imports the dispatcher's `{m}`")
            # A command file directly in cli/ reaches only its sibling modules through `super::`.
            if dp == os.path.join(root, 'cli'):
                siblings = {n.removesuffix('.rs') for n in os.listdir(dp) if n != 'mod.rs'}
                for m in re.findall(r'super::([a-z_]+)', text):
                    if m not in siblings:
                        bad.append(f"{path}: reaches the dispatcher's `{m}` through super::")
for b in bad:
    print(b)
sys.exit(1 if cycles or bad else 0)
