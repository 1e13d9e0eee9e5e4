"""Load and latency benchmarks: Partsboard against a minimal relay on the same stack.

`python -m bench [--quick] [--out docs/performance.md]` runs the standard set.
Modules: procs (processes and /proc readings), relay (the baseline server),
load (the raw-websockets load generator), scenarios (what is run), report
(the Markdown).
"""

from __future__ import annotations
