"""Issue 11's moves over real websockets, on a real server and Redis: what each viewer got."""

from __future__ import annotations

import pytest
from ifs_moves import open_ifs_room, play_ifs_moves

pytestmark = pytest.mark.timeout(120)


async def test_every_new_move_from_all_three_roles(server) -> None:
    room = await open_ifs_room(server.base_url)
    try:
        t, a, b = room.therapist, room.a, room.b
        moves = await play_ifs_moves(room)
        for client in room.all:
            await client.wait_seq(max(c.seq for c in room.all))
        views = {"therapist": t.view, "a": a.view, "b": b.view}
        young, link = moves.ids["young"], moves.ids["link"]
        for role, view in views.items():
            colls = view["colls"]
            assert colls["parts"][young]["age"] == "five", role
            assert colls["links"][link]["kind"] == "allied_with", role
            # Each answer went with its part; the one toward the removed draft is gone.
            assert sorted((tuple(f["qualities"]), f["other"])
                          for f in colls["feelings"].values()) == [
                ((), "annoyed"), (("calm", "curiosity"), "")], role
            need = colls["needs"][young]
            assert (need["answer"], [p["answer"] for p in need["answers"]]) == (
                "yes", ["lets_talk"]), role
            assert need["self_offer"] == "I can remind it I am here", role
            (first, second) = sorted(colls["turns"].values(), key=lambda turn: turn["order"])
            assert (first["heard"], first["part"], second["speaker"]) == (True, young, "b")
            assert second["ended_at"] is not None
            assert len(colls["checkins"]["b"]["history"]) == 1, role
        assert set(views["therapist"]["colls"]["uturns"]) == {moves.ids["uturn_kept"],
                                                              moves.ids["uturn_shared"]}
        assert set(views["b"]["colls"]["uturns"]) == set(views["therapist"]["colls"]["uturns"])
        assert set(views["a"]["colls"]["uturns"]) == {moves.ids["uturn_shared"]}
        for role, client in zip(("therapist", "a", "b"), room.all, strict=True):
            received = b"".join(client.raw_frames)
            for text in moves.never[role]:
                assert text.encode() not in received, f"{role} received a private text"
            assert client.anomalies == []
    finally:
        await room.close()
