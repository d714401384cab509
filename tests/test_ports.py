"""Ports for servers started later come from below the kernel's ephemeral range, where no outgoing
connection can take one between the choice and the server's bind (CI saw `dsrflow up` exit with a
port in use), and never from a port something already holds."""

from __future__ import annotations

import collections
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dsrflow.infra import ports
from dsrflow.infra.ports import free_port


def _listening(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_ports_come_from_below_the_ephemeral_range():
    start = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    chosen = {free_port() for _ in range(200)}
    assert all(20000 <= port < start for port in chosen), sorted(chosen)
    for port in list(chosen)[:20]:
        _listening(port).close()  # free when chosen: a server can bind it


def test_a_port_in_use_is_skipped_and_a_full_band_falls_back(tmp_path, monkeypatch):
    # A band of two ports, both free now: one held, the other must be the answer.
    monkeypatch.delenv(ports.SHARE_VARIABLE, raising=False)  # the whole band, not this worker's share
    base = next(p for p in range(20000, 30000, 7) if all(_free(p + i) for i in range(2)))
    monkeypatch.setattr(ports, "_SERVER_PORTS_FROM", base)
    (tmp_path / "range").write_text(f"{base + 2}\t60999\n")
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", tmp_path / "range")
    monkeypatch.setattr(ports, "_RECENT", collections.deque(maxlen=64))
    with _listening(base):
        assert free_port() == base + 1
        # Handed out and not yet bound: not handed out again, though free; the band is full.
        assert free_port() >= base + 2
        ports._RECENT.clear()
        with _listening(base + 1):
            assert free_port() >= base + 2  # the band is full: the kernel's choice


def test_a_port_handed_out_is_not_handed_out_again_while_its_server_may_not_have_bound_it(monkeypatch):
    """A stack picks its APIs' ports, then, while starting its other servers, theirs: free when
    probed, an API's port could be picked again before the API bound it, and one of the two
    servers then failed to start (a benchmark's API "exited with code 3" in a clean CI run)."""
    monkeypatch.setattr(ports, "_RECENT", collections.deque(maxlen=64))
    base = next(p for p in range(21000, 30000, 7) if all(_free(p + i) for i in range(2)))
    drawn = iter([base, base, base, base + 1])  # the random draw lands on the API's port again
    monkeypatch.setattr(ports._pick, "randrange", lambda low, below: next(drawn))
    assert [free_port(), free_port()] == [base, base + 1]


def _free(port: int) -> bool:
    try:
        _listening(port).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("text", ["", "garbage", "x 60999"])
def test_an_unreadable_range_assumes_linux_default(tmp_path, monkeypatch, text):
    (tmp_path / "range").write_text(text)
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", tmp_path / "range")
    assert 20000 <= free_port() < 32768


def test_ports_picked_together_are_distinct(monkeypatch):
    """Each pick is free when probed, but nothing holds it: picked together, two could be one
    (a stack's API and its Temporal dev server were once given the same port)."""
    picks = iter([21000, 21000, 21001, 21000, 21002])
    monkeypatch.setattr(ports, "free_port", lambda: next(picks))
    assert ports.free_ports(3) == [21000, 21001, 21002]


@pytest.mark.parametrize("share, band", [("0/4", (20000, 23192)), ("3/4", (29576, 32768)), ("1/1", None)])
def test_each_share_picks_in_its_own_part_of_the_range(tmp_path, monkeypatch, share, band):
    """pytest's workers each pick in a share of their own (DSRFLOW_TESTS_PORT_SHARE, set by
    tests/conftest.py): two workers never pick one port in the seconds before a server binds it."""
    (tmp_path / "range").write_text("32768\t60999\n")
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", tmp_path / "range")
    monkeypatch.setenv(ports.SHARE_VARIABLE, share)
    if band is None:  # 1/1 is not k/n with k < n
        with pytest.raises(ValueError, match="DSRFLOW_TESTS_PORT_SHARE='1/1'"):
            free_port()
        return
    chosen = {free_port() for _ in range(100)}
    assert all(band[0] <= port < band[1] for port in chosen), sorted(chosen)


def test_a_child_started_after_a_pick_does_not_pick_that_port_again(monkeypatch):
    """A worker picks its SDK metrics port itself: its parent's picks whose servers have not bound
    them yet reach it through the environment it inherits, so it draws around them as the parent would."""
    monkeypatch.setattr(ports, "_RECENT", collections.deque(maxlen=64))
    monkeypatch.delenv(ports.HANDED_OUT_VARIABLE, raising=False)
    base = next(p for p in range(22000, 30000, 7) if all(_free(p + i) for i in range(2)))
    monkeypatch.setattr(ports._pick, "randrange", lambda low, below: base)
    assert free_port() == base  # handed to a server not started yet
    child = ("import itertools; from dsrflow.infra import ports; "
             f"draws = itertools.chain([{base}, {base}], itertools.repeat({base + 1})); "
             "ports._pick.randrange = lambda low, below: next(draws); print(ports.free_port())")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)
    assert int(out.stdout) == base + 1
