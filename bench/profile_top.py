"""Summarise a py-spy profile (`py-spy record -f raw`, as the benchmarks' --profile writes).

    .venv/bin/python -m bench.profile_top FILE [--top 30]

Prints the share of samples per function: where the time is spent (self) and what it is spent
under (total). Idle samples (the event loop waiting) are counted apart.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

_IDLE = ("select (selectors.py", "_idle", "epoll")


def summarise(path: Path, top: int) -> str:
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    samples = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        samples += n
        if any(marker in frames[-1] for marker in _IDLE):
            idle += n
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            under[frame] += n
    busy = max(samples - idle, 1)
    lines = [f"{samples} samples, {idle * 100 / max(samples, 1):.0f}% idle; shares of the busy ones:",
             "-- self"]
    lines += [f"{n * 100 / busy:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines.append("-- total")
    lines += [f"{n * 100 / busy:5.1f}%  {frame}" for frame, n in under.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(summarise(args.file, args.top))
