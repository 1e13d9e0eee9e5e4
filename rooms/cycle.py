"""The couple's protective cycle as a picture, laid out from one viewer's own view.

IFIO's cycle: one partner's protector reacts to the other's part, whose protector reacts
back to the first partner's part, and round again. The picture puts partner a on the left,
b on the right; protectors (managers, firefighters and any part that protects another) in
the upper row, the parts they protect below. Its parts are those of the "reacts to" links
and, following "protects" links either way, the parts protecting or protected by them.

`layout` takes only what the viewer already sees (the parts and links of their view or of
their export), so the picture can never show more than the board does. The browser's "Show
the cycle" asks the server for it (server/api.py, drawn from the viewer's live view with the
export's SVG markup, templates/_cycle.html.j2), so the layout has this one home.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

WIDTH: Final = 1000
NODE_W: Final = 240
NODE_H: Final = 64
ROW_GAP: Final = 60  # between two parts of one group: room for an arrow and its label
BAND_GAP: Final = 90  # between the protectors' row and the protected parts' row
MARGIN: Final = 40
COLUMNS: Final = {"a": 200, "b": 800}  # centres of the two sides
PROTECTOR_KINDS: Final = frozenset({"manager", "firefighter"})
ARROW_LENGTH: Final = 16
ARROW_HALF: Final = 7
ARROW_CLEAR: Final = 4
BEND: Final = 60
DETOUR: Final = 60  # how far beside its column an arrow runs past a box in its way
LABEL_HALF_W: Final = 42  # half the width of "protects" or "reacts to" at the label's size
LABEL_HALF_H: Final = 11
CYCLE_KINDS: Final = frozenset({"protects", "reacts_to"})


def layout(parts: Mapping[str, Mapping[str, Any]], links: Iterable[Mapping[str, Any]]
           ) -> dict[str, Any]:
    """{"width", "height", "nodes": [{id, owner, name, kind, x, y, w, h}] (x, y the centre),
    "edges": [{id, kind, source, target, path, arrow, label_x, label_y}]}; no nodes when the
    viewer sees no "reacts to" link."""
    shown = [link for link in links if link["source"] in parts and link["target"] in parts]
    shown.sort(key=lambda link: (link.get("order", 0), link["id"]))
    members = {end for link in shown if link["kind"] == "reacts_to"
               for end in (link["source"], link["target"])}
    protects = [link for link in shown if link["kind"] == "protects"]
    grown = True
    while grown:
        grown = False
        for link in protects:
            ends = {link["source"], link["target"]}
            if ends & members and not ends <= members:
                members |= ends
                grown = True
    protectors = {link["source"] for link in protects}
    first_seen: dict[str, int] = {}
    for index, link in enumerate(shown):
        for end in (link["source"], link["target"]):
            first_seen.setdefault(end, index)

    groups: dict[tuple[str, int], list[str]] = {}
    for part_id in members:
        part = parts[part_id]
        row = 0 if part["kind"] in PROTECTOR_KINDS or part_id in protectors else 1
        groups.setdefault((part["owner"], row), []).append(part_id)
    # A protector of a protector sits above it, so no "protects" arrow runs behind a box.
    depth = dict.fromkeys(members, 0)
    for _ in members:  # one pass per part: enough for any chain; a protects loop stops there
        for link in protects:
            if link["source"] in depth and link["target"] in depth:
                depth[link["source"]] = max(depth[link["source"]], depth[link["target"]] + 1)
    for group in groups.values():
        group.sort(key=lambda p: (-depth[p], first_seen[p], parts[p]["name"], p))
    tallest = [max((len(groups.get((owner, row), [])) for owner in COLUMNS), default=0)
               for row in (0, 1)]
    band = [n * NODE_H + max(0, n - 1) * ROW_GAP for n in tallest]
    tops = [MARGIN, MARGIN + band[0] + (BAND_GAP if band[0] and band[1] else 0)]
    height = tops[1] + band[1] + MARGIN if members else 0

    nodes = []
    for (owner, row), group in sorted(groups.items()):
        for index, part_id in enumerate(group):
            part = parts[part_id]
            nodes.append({
                "id": part_id, "owner": owner, "name": part["name"], "kind": part["kind"],
                "x": COLUMNS[owner], "y": tops[row] + index * (NODE_H + ROW_GAP) + NODE_H / 2,
                "w": NODE_W, "h": NODE_H,
            })
    where = {node["id"]: node for node in nodes}
    edges = [_edge(link, where[link["source"]], where[link["target"]], nodes)
             for link in shown if link["kind"] in CYCLE_KINDS
             and link["source"] in where and link["target"] in where]
    return {"width": WIDTH, "height": height, "nodes": nodes, "edges": edges}


def _edge_point(towards: tuple[float, float], node: Mapping[str, Any],
                gap: float) -> tuple[float, float]:
    """Where the line from the node's centre to `towards` leaves its box, `gap` outside."""
    cx, cy = node["x"], node["y"]
    dx, dy = towards[0] - cx, towards[1] - cy
    if dx == 0 and dy == 0:
        return cx, cy
    hw, hh = node["w"] / 2 + gap, node["h"] / 2 + gap
    scale = min(hw / abs(dx) if dx else math.inf, hh / abs(dy) if dy else math.inf)
    return cx + dx * scale, cy + dy * scale


def _edge(link: Mapping[str, Any], source: Mapping[str, Any], target: Mapping[str, Any],
          nodes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    between = [node for node in nodes if node["x"] == source["x"] == target["x"]
               and min(source["y"], target["y"]) < node["y"] < max(source["y"], target["y"])]
    if between:
        # Past a box of its own column (a protects loop closing, a protector of a part
        # further down): out of the side facing the middle, round and back in.
        inward = 1 if source["x"] < WIDTH / 2 else -1
        side = source["x"] + inward * source["w"] / 2
        sx, sy = side + inward * 2, source["y"]
        ex, ey = side + inward * ARROW_CLEAR, target["y"]
        # Up and down apart, so a pair of opposite arrows both show.
        detour = DETOUR if ey > sy else 1.8 * DETOUR
        cx, cy = side + inward * 2 * detour, (sy + ey) / 2
    else:
        sx, sy = _edge_point((target["x"], target["y"]), source, 2)
        ex, ey = _edge_point((source["x"], source["y"]), target, ARROW_CLEAR)
        dx, dy = ex - sx, ey - sy
        length = math.hypot(dx, dy) or 1
        # Bent to its own left, so two arrows between the same parts both show.
        bend = min(BEND, length / 4)
        cx, cy = (sx + ex) / 2 + dy / length * bend, (sy + ey) / 2 - dx / length * bend
    tx, ty = ex - cx, ey - cy
    tl = math.hypot(tx, ty) or 1
    ux, uy = tx / tl, ty / tl
    bx, by = ex - ux * ARROW_LENGTH, ey - uy * ARROW_LENGTH
    arrow = [(ex, ey), (bx - uy * ARROW_HALF, by + ux * ARROW_HALF),
             (bx + uy * ARROW_HALF, by - ux * ARROW_HALF)]
    # The label on the curve's middle (t = 0.5 of the quadratic); between two boxes of one
    # column, beside it on the side it bends to (so the labels of two opposite arrows part),
    # and on a detour a little up or down by direction.
    label_x, label_y = (sx + 2 * cx + ex) / 4, (sy + 2 * cy + ey) / 4
    if between:
        label_y += LABEL_HALF_H + 3 if ey < sy else -(LABEL_HALF_H + 3)
    elif source["x"] == target["x"]:
        label_x += math.copysign(LABEL_HALF_W + 6, cx - sx)
    return {
        "id": link["id"], "kind": link["kind"], "source": link["source"],
        "target": link["target"],
        "path": f"M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}",
        "arrow": " ".join(f"{x:.1f},{y:.1f}" for x, y in arrow),
        "label_x": round(label_x, 1), "label_y": round(label_y, 1),
    }
