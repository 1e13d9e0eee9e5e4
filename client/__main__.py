"""Command line: `python -m client demo [--base URL] [--key KEY] [--pace SECONDS]
[--end-after SECONDS] [--export]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable

from .demo import Wait, at_once, describe_error, run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="create a room and play the demo couple through all five stages"
    )
    demo.add_argument("--base", default="http://127.0.0.1:8000",
                      help="the server's base URL (default %(default)s)")
    demo.add_argument("--key", default=os.environ.get("PARTSBOARD_THERAPIST_KEY"),
                      help="the therapist key (default: $PARTSBOARD_THERAPIST_KEY; "
                           "none for a server in development mode)")
    demo.add_argument("--pace", type=float, default=0.3,
                      help="seconds to wait after each step (default %(default)s)")
    demo.add_argument("--end-after", type=float, metavar="SECONDS",
                      help="keep the finished session open this long (Enter ends it sooner), "
                           "then end it; by default a terminal waits for Enter before the "
                           "demo starts and before it ends the session, and anything else "
                           "ends it at once")
    demo.add_argument("--export", action="store_true",
                      help="save the therapist's JSON export in the current directory")
    args = parser.parse_args(argv)
    if args.pace < 0:
        parser.error("--pace cannot be negative")
    if args.end_after is not None and args.end_after < 0:
        parser.error("--end-after cannot be negative")
    say: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731
    until_start, until_end = waits(args.end_after, sys.stdin.isatty(), say)
    try:
        asyncio.run(run_demo(args.base, args.key, pace=args.pace, export_json=args.export,
                             say=say, until_start=until_start, until_end=until_end))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        print(f"The demo stopped: {describe_error(error)}", file=sys.stderr)
        return 1
    print("Demo complete.")
    return 0


def waits(end_after: float | None, terminal: bool,
          say: Callable[[str], None]) -> tuple[Wait, Wait]:
    """When to start, and when to end the finished session (which deletes the room)."""

    async def start_on_enter() -> None:
        say("Press Enter to start.")
        await enter_pressed()

    async def end_on_enter() -> None:
        say("The session stays open: press Enter to end it (this deletes the room).")
        await enter_pressed()

    async def end_later() -> None:
        say(f"The session stays open for {end_after:g} s (Enter ends it sooner).")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enter_pressed(), end_after)

    if end_after is not None:
        return at_once, end_later
    if terminal:
        return start_on_enter, end_on_enter
    return at_once, at_once


async def enter_pressed() -> None:
    """Return once a line arrives on stdin; never when it is closed or cannot be watched.
    (A reader on the event loop, not a thread: a thread blocked in readline would keep
    the process alive after the demo.)"""
    loop = asyncio.get_running_loop()
    pressed = asyncio.Event()
    fd = sys.stdin.fileno()

    def readable() -> None:
        data = os.read(fd, 4096)
        if b"\n" in data:
            pressed.set()
        elif not data:
            loop.remove_reader(fd)  # end of input: no Enter will come

    try:
        loop.add_reader(fd, readable)
    except (OSError, ValueError):  # /dev/null and regular files cannot be watched
        await asyncio.Event().wait()
    try:
        await pressed.wait()
    finally:
        loop.remove_reader(fd)


if __name__ == "__main__":
    sys.exit(main())
