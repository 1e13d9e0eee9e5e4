"""`python -m bench.profile FILE...`: where py-spy's samples (collapsed stacks, as
`python -m bench --profile DIR` records them) spent the server's time: the share of
samples under each function (inclusive) and in it (self), largest first."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def frames(path: Path) -> tuple[Counter[str], Counter[str], int]:
    """(inclusive, self, total) sample counts per frame of a collapsed-stack file."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        names = [_short(frame) for frame in stack.split(";")]
        for name in set(names):
            inclusive[name] += n
        own[names[-1]] += n
    return inclusive, own, total


def _short(frame: str) -> str:
    """`send (uvicorn/protocols/websockets/websockets_sansio_impl.py:123)` ->
    `send (websockets_sansio_impl.py)`: one name per function, whatever its line."""
    name, _, where = frame.partition(" (")
    file = where.split(":", 1)[0].rstrip(")").rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name


def summary(paths: list[Path], top: int = 30) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for path in paths:
        i, o, t = frames(path)
        inclusive.update(i)
        own.update(o)
        total += t
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "inclusive  self  function"]
    for name, n in inclusive.most_common(top):
        lines.append(f"{100 * n / total:8.1f}% {100 * own[name] / total:5.1f}%  {name}")
    lines += ["", "self only:"]
    for name, n in own.most_common(top):
        lines.append(f"{100 * n / total:8.1f}%  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    print(summary(args.files, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
