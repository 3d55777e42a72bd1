"""A workflow's graph laid out for a server-rendered SVG, internal: each node in a column
by its depth (the longest path from a root), edges from parent to child (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from offload.backends.params import WorkflowNode

#: The size of one node's box and the gaps between boxes, in SVG units.
WIDTH, HEIGHT, GAP_X, GAP_Y, MARGIN = 170, 44, 60, 16, 10
#: The most nodes drawn; a bigger workflow is listed, not drawn.
MAX_DRAWN = 300


@dataclass(frozen=True, slots=True)
class Box:
    node: WorkflowNode
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int
    #: The parent's state, which colours the edge.
    state: str


@dataclass(frozen=True, slots=True)
class Layout:
    boxes: list[Box]
    edges: list[Edge]
    width: int
    height: int


def layout(nodes: list[WorkflowNode]) -> Layout | None:
    """Columns by depth, nodes in id order within a column; None past `MAX_DRAWN`."""
    if not nodes or len(nodes) > MAX_DRAWN:
        return None
    by_id = {node.job_id: node for node in nodes}
    depth: dict[int, int] = {}
    for node in sorted(nodes, key=lambda n: n.job_id):  # parents have smaller ids
        parents = [p for p in node.parents if p in by_id]
        depth[node.job_id] = 1 + max((depth.get(p, 0) for p in parents), default=-1)
    columns: dict[int, list[WorkflowNode]] = {}
    for node in nodes:
        columns.setdefault(depth[node.job_id], []).append(node)
    rows = max(len(members) for members in columns.values())
    boxes: dict[int, Box] = {}
    for column, members in columns.items():
        shift = (rows - len(members)) * (HEIGHT + GAP_Y) // 2  # each column centred
        for row, node in enumerate(sorted(members, key=lambda n: n.job_id)):
            x = MARGIN + column * (WIDTH + GAP_X)
            y = MARGIN + shift + row * (HEIGHT + GAP_Y)
            boxes[node.job_id] = Box(node, x, y)
    edges = []
    for node in nodes:
        child = boxes[node.job_id]
        for parent_id in node.parents:
            parent = boxes.get(parent_id)
            if parent is not None:
                edges.append(
                    Edge(
                        parent.x + WIDTH,
                        parent.y + HEIGHT // 2,
                        child.x,
                        child.y + HEIGHT // 2,
                        str(parent.node.state),
                    )
                )
    width = 2 * MARGIN + len(columns) * WIDTH + (len(columns) - 1) * GAP_X
    height = 2 * MARGIN + rows * HEIGHT + (rows - 1) * GAP_Y
    return Layout(list(boxes.values()), edges, width, height)
