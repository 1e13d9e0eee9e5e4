"""The protective cycle's picture (rooms/cycle.py), laid out from one viewer's own view."""

from __future__ import annotations

from typing import Any

from rooms_helpers import Session

from rooms import cycle, export
from rooms.model import Role
from server.export_render import render_export


def couple(drafts: bool = True) -> tuple[Session, dict[str, str]]:
    """Two partners' protectors reacting to each other, each guarding an exile; partner a
    also has a private part in the cycle, partner b an unrelated shared part."""
    s = Session(stage=3, names=("Mira", "Tove"), drafts=drafts)
    ids = {
        "guard_a": s.part("a", "The Lecturer", kind="manager", shared=True),
        "young_a": s.part("a", "The Forgotten One", kind="exile", shared=True),
        "hidden_a": s.part("a", "The Secret Drinker", kind="firefighter"),
        "guard_b": s.part("b", "The Shutter", kind="firefighter", shared=True),
        "young_b": s.part("b", "The Small Worrier", kind="exile", shared=True),
        "apart_b": s.part("b", "The Gardener", kind="unsure", shared=True),
    }
    s.link("a", "protects", ids["guard_a"], ids["young_a"])
    s.link("b", "protects", ids["guard_b"], ids["young_b"])
    s.link("a", "reacts_to", ids["guard_a"], ids["guard_b"])
    s.link("b", "reacts_to", ids["guard_b"], ids["young_a"])
    s.link("a", "protects", ids["hidden_a"], ids["young_a"])
    return s, ids


def picture_for(s: Session, viewer: Role) -> dict[str, Any]:
    view = s.view(viewer)
    return cycle.layout(view["colls"]["parts"], view["colls"]["links"].values())


def test_the_loop_is_laid_out_by_side_and_row() -> None:
    s, ids = couple()
    picture = picture_for(s, "a")
    nodes = {node["id"]: node for node in picture["nodes"]}
    assert set(nodes) == {ids["guard_a"], ids["young_a"], ids["hidden_a"], ids["guard_b"],
                          ids["young_b"]}  # not the part outside the cycle
    for part, node in nodes.items():
        assert node["x"] == cycle.COLUMNS[s.room.parts[part].owner]
    # Protectors above the parts they protect, on both sides.
    assert nodes[ids["guard_a"]]["y"] < nodes[ids["young_a"]]["y"]
    assert nodes[ids["hidden_a"]]["y"] < nodes[ids["young_a"]]["y"]
    assert nodes[ids["guard_b"]]["y"] < nodes[ids["young_b"]]["y"]
    assert len(picture["edges"]) == 5
    # No two boxes overlap; everything is inside the picture.
    boxes = [(n["x"] - n["w"] / 2, n["y"] - n["h"] / 2, n["x"] + n["w"] / 2, n["y"] + n["h"] / 2)
             for n in picture["nodes"]]
    for i, one in enumerate(boxes):
        assert 0 <= one[0] and one[2] <= picture["width"] and 0 <= one[1]
        assert one[3] <= picture["height"]
        for two in boxes[i + 1:]:
            assert not (one[0] < two[2] and two[0] < one[2] and one[1] < two[3]
                        and two[1] < one[3])


def test_each_role_sees_only_its_own_cycle() -> None:
    s, ids = couple()
    seen = {role: {n["id"] for n in picture_for(s, role)["nodes"]}
            for role in ("therapist", "a", "b")}
    assert ids["hidden_a"] in seen["a"] and ids["hidden_a"] in seen["therapist"]
    assert ids["hidden_a"] not in seen["b"]
    assert seen["b"] == seen["a"] - {ids["hidden_a"]}
    owner_only, _ = couple(drafts=False)
    therapist = {n["id"] for n in picture_for(owner_only, "therapist")["nodes"]}
    assert ids["hidden_a"] not in therapist


def test_no_reacts_to_link_no_picture() -> None:
    s = Session(stage=3)
    s.link("a", "protects", s.part("a", shared=True), s.part("a", shared=True))
    assert picture_for(s, "therapist") == {"width": cycle.WIDTH, "height": 0, "nodes": [],
                                           "edges": []}


def test_the_html_export_draws_the_viewers_cycle_and_nothing_more() -> None:
    s, ids = couple()
    for viewer in ("a", "b", "therapist"):
        doc = export.export_for(s.room, viewer, s.now)
        html = render_export(doc, "html")[0].decode()
        svg = html[html.index('<svg class="cycle"'):html.index("</svg>")]
        # The therapist's copy holds the shared board only, so a's draft is not in it.
        shown = {n["id"] for n in picture_for(s, viewer)["nodes"]} - (
            {ids["hidden_a"]} if viewer == "therapist" else set())
        assert {part for part in ids.values() if f'data-part="{part}"' in svg} == shown
        assert ("The Secret Drinker" in svg) is (viewer == "a")
        assert "The Gardener" not in svg
    # The same layout from the unfiltered room would show the private part: the filtering
    # is what keeps it out of b's copy.
    everything = cycle.layout(
        {k: {"id": k, "owner": p.owner, "name": p.name, "kind": p.kind}
         for k, p in s.room.parts.items()},
        [{"id": k, "kind": v.kind, "source": v.source, "target": v.target, "order": v.order}
         for k, v in s.room.links.items()])
    assert ids["hidden_a"] in {n["id"] for n in everything["nodes"]}


def column_of_three() -> tuple[Session, str, str, str, str]:
    """Three shared parts of Mira's, top to bottom once linked, and one of Tove's."""
    s = Session(stage=3, names=("Mira", "Tove"))
    return (s, s.part("a", "The Planner", kind="firefighter", shared=True),
            s.part("a", "The Critic", kind="manager", shared=True),
            s.part("a", "The Little One", kind="exile", shared=True),
            s.part("b", "The Shutter", kind="firefighter", shared=True))


def test_a_protector_of_a_protector_sits_above_it() -> None:
    s, outer, inner, young, other = column_of_three()
    s.link("a", "reacts_to", inner, other)  # seen first, yet its protector goes above it
    s.link("a", "protects", inner, young)
    s.link("a", "protects", outer, inner)
    nodes = {node["id"]: node for node in picture_for(s, "b")["nodes"]}
    assert nodes[outer]["y"] < nodes[inner]["y"] < nodes[young]["y"]


def meet(one: tuple[float, ...], two: tuple[float, ...]) -> bool:
    return one[0] < two[2] and two[0] < one[2] and one[1] < two[3] and two[1] < one[3]


def crossed_boxes(picture: dict[str, Any]) -> list[tuple[str, str]]:
    """(edge, node) for each curve that runs through a box other than its own two ends."""
    crossed = []
    for edge in picture["edges"]:
        (sx, sy), (cx, cy), (ex, ey) = (tuple(map(float, point.split(","))) for point in
                                        edge["path"].lstrip("M").replace(" Q", " ").split())
        for node in picture["nodes"]:
            if node["id"] in (edge["source"], edge["target"]):
                continue
            for step in range(51):
                t = step / 50
                x = (1 - t) ** 2 * sx + 2 * (1 - t) * t * cx + t * t * ex
                y = (1 - t) ** 2 * sy + 2 * (1 - t) * t * cy + t * t * ey
                if abs(x - node["x"]) < node["w"] / 2 and abs(y - node["y"]) < node["h"] / 2:
                    crossed.append((edge["id"], node["name"]))
                    break
    return crossed


def test_no_arrow_runs_through_a_box_of_its_column() -> None:
    s, top, middle, young, other = column_of_three()
    other_young = s.part("b", "The Hidden Kid", kind="exile", shared=True)
    s.link("a", "reacts_to", middle, other)
    s.link("a", "protects", top, middle)
    s.link("a", "protects", middle, young)
    s.link("a", "protects", young, top)  # a loop closing from the bottom to the top
    s.link("a", "protects", top, young)  # past the box in between
    s.link("b", "protects", other, other_young)
    s.link("b", "reacts_to", other, top)
    s.link("a", "polarized_with", top, middle)  # not part of the cycle: not drawn in it
    picture = picture_for(s, "b")
    assert len(picture["edges"]) == 7
    assert crossed_boxes(picture) == []
    labels = [(e["label_x"] - cycle.LABEL_HALF_W, e["label_y"] - cycle.LABEL_HALF_H,
               e["label_x"] + cycle.LABEL_HALF_W, e["label_y"] + cycle.LABEL_HALF_H)
              for e in picture["edges"]]
    boxes = [(n["x"] - n["w"] / 2, n["y"] - n["h"] / 2, n["x"] + n["w"] / 2, n["y"] + n["h"] / 2)
             for n in picture["nodes"]]
    for i, label in enumerate(labels):
        assert not any(meet(label, other) for other in labels[i + 1:] + boxes)
    for edge in picture["edges"]:
        for point in edge["arrow"].split():
            x, y = map(float, point.split(","))
            assert 0 <= x <= picture["width"] and 0 <= y <= picture["height"]
