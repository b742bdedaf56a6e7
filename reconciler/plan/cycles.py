"""Dependency-graph algorithms the planner needs: strongly connected components.

Pure and iterative (no recursion limit at postmarketOS scale). A cycle is reported
as the member names in the order the edges run, so a person can read
"a → b → c → a".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def strongly_connected(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's algorithm; nodes only referenced as targets count as nodes too."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = sorted(graph.get(node, ()))
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


def find_cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each dependency cycle as a path through its members, smallest name first."""
    cycles: list[list[str]] = []
    for component in strongly_connected(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph.get(component[0], ()):
            continue
        start = min(members)
        path = [start]
        node = start
        while True:
            nxt = min((t for t in graph.get(node, ()) if t in members), default=start)
            if nxt == start or nxt in path:
                break
            path.append(nxt)
            node = nxt
        cycles.append(path)
    return sorted(cycles)
