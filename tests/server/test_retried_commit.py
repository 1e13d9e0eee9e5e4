"""A command committed once and sent again (a resend, or a retry after the connection to
Redis died before its reply) is applied once, and its event still reaches the members of
the room where the second attempt ran."""

from __future__ import annotations

from hub_helpers import Listener, make_room, open_store

from rooms.actions import parse_args
from server.commands import execute
from server.live_room import LiveRoom


async def test_a_command_committed_before_its_retry_is_delivered_once(redis_url: str) -> None:
    async with open_store(redis_url) as store:
        room_id = await make_room(store)
        room = await store.load(room_id)
        assert room is not None
        first, retried = LiveRoom(room_id, room.epoch, store), LiveRoom(room_id, room.epoch, store)
        first.start_from(room)
        retried.start_from(room)  # it has not heard of the first attempt's commit
        member = Listener("member")
        retried.members.add(member)
        command = parse_args("note.add", {"text": "hello"})
        assert await execute(first, "therapist", "c1", command) == 1
        assert await execute(retried, "therapist", "c1", command) == 1
        assert member.event_seqs() == [1]
        assert (await store.load(room_id)).seq == 1  # type: ignore[union-attr]
