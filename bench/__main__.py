"""`python -m bench [--quick] [--out docs/performance.md]`: run the standard set."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from . import procs, report, scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a small set (about 2 minutes) instead of the standard one")
    parser.add_argument("--out", type=Path, help="Markdown file to write the results into")
    parser.add_argument("--json", type=Path, help="also write the raw results as JSON")
    parser.add_argument("--only", choices=tuple(procs.PROCESSES), action="append",
                        help="benchmark only this system (repeatable)")
    parser.add_argument("--cluster", action="store_true",
                        help="cluster mode: Partsboard on one Redis (one server process, then "
                             "two) beside a Redis Cluster of 3 shards (two server processes)")
    parser.add_argument("--workers", type=int,
                        help="load generator processes (default 2, and 1 with --pin: on one "
                             "CPU a second process adds no capacity, only the wait for its "
                             "turn, which lands in the measured latency)")
    parser.add_argument("--rooms", type=int, nargs="+", help="the steady sweep's room counts")
    parser.add_argument("--nice", type=int, default=0,
                        help="scheduling priority for every benchmarked process (e.g. -5 on a "
                             "machine shared with other work; needs root)")
    parser.add_argument("--pin", action="store_true",
                        help="pin the server to the first CPU, Redis and the generators to "
                             "the second (as issue 13 measured)")
    parser.add_argument("--part", choices=("shape", "standard"), action="append",
                        help="run only this part: the fixed-rate shape over 100 rooms, or the "
                             "standard sweep, saturation and storm (repeatable; default both)")
    parser.add_argument("--from-json", type=Path,
                        help="do not run anything: render the results of an earlier --json")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample Partsboard's server with py-spy during each fixed-rate "
                             "step into DIR (summarize with python -m bench.profile)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the server logs (their directory is printed)")
    args = parser.parse_args(argv)
    plan = scenarios.QUICK if args.quick else scenarios.STANDARD
    workers = args.workers or (1 if args.pin else None)
    if workers:
        plan = dataclasses.replace(plan, workers=workers)
    if args.rooms:
        plan = dataclasses.replace(plan, sweep=tuple(args.rooms))
    if args.part and "standard" not in args.part:
        plan = dataclasses.replace(plan, sweep=())
    if args.part and "shape" not in args.part:
        plan = dataclasses.replace(plan, shape_rooms=0)
    t0 = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {line}", flush=True)

    if args.from_json:
        results = scenarios.Results(**json.loads(args.from_json.read_text()))
    else:
        results = scenarios.run_all(plan, log=log, keep_logs=args.keep_logs,
                                    systems=tuple(args.only or (scenarios.CLUSTER_SYSTEMS
                                                  if args.cluster else scenarios.SYSTEMS)),
                                    nice=args.nice, pin=args.pin, profile=args.profile)
    text = report.render(results)
    print(text)
    if args.out:
        report.write(results, args.out)
        log(f"wrote {args.out}")
    if args.json:
        args.json.write_text(json.dumps(dataclasses.asdict(results), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
