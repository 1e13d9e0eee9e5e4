"""What one measured window of the generator counts, and what it leaves to the next."""

from __future__ import annotations

from bench.load import Config, Member, Room, Worker


def test_a_command_never_acknowledged_counts_in_the_window_it_was_sent_in_only() -> None:
    worker = Worker(Config(kind="relay", ports=[1]))
    room = Room("r1")
    room.members = [Member(room, index, secret="") for index in range(3)]
    room.members[1].unacked["w0c1"] = b"lost by the server"
    assert worker._collect([room], 1.0)["unacked"] == 1
    assert worker._collect([room], 1.0)["unacked"] == 0  # the next window: not its loss
    room.members[2].unacked["w0c2"] = b"a new one"
    assert worker._collect([room], 1.0)["unacked"] == 1
