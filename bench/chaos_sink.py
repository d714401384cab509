"""The SMTP sink of devstack/smtp_sink.py as a process of its own, so the chaos suite can stop
and restart it like any other component (`dsrflow up` runs it on a thread of its own process).

    python -m bench.chaos_sink --port PORT --directory DIR
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from devstack.smtp_sink import MailSink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--directory", type=Path, required=True)
    args = parser.parse_args()
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    sink = MailSink(args.directory, args.port)
    sink.start()
    try:
        stopping.wait()
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
