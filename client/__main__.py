"""Command line: `python -m client demo --base URL [--key KEY] [--pace 0.3] [--export]`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from .demo import describe_error, run_demo


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
    demo.add_argument("--export", action="store_true",
                      help="save the therapist's JSON export in the current directory")
    args = parser.parse_args(argv)
    if args.pace < 0:
        parser.error("--pace cannot be negative")
    try:
        asyncio.run(run_demo(args.base, args.key, pace=args.pace, export_json=args.export,
                             say=lambda line: print(line, flush=True)))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        print(f"The demo stopped: {describe_error(error)}", file=sys.stderr)
        return 1
    print("Demo complete.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
