"""The embedded PostgreSQL's URLs (devstack/postgres.py): the stack's own processes reach it
through its Unix socket where the kernel can name one; a server run as another user, below a
private directory, is tried in tests/test_devstack_private_dir.py."""

from __future__ import annotations

from pathlib import Path

from devstack.postgres import EmbeddedPostgres
from devstack.processes import free_port


def test_a_data_directory_whose_socket_path_is_too_long_is_reached_over_tcp(tmp_path):
    """The kernel takes a Unix socket's path up to 107 bytes: past that, the stack's processes use
    the TCP port like everyone else."""
    port = free_port()
    short = EmbeddedPostgres(Path("/srv/dsrflow/pg"), port)  # only named, never started
    assert short.local_url("dsrflow") == f"postgresql://postgres@/dsrflow?host=/srv/dsrflow/pg&port={port}"
    deep = EmbeddedPostgres(tmp_path / ("d" * 120) / "pg", port)
    assert deep.local_url("dsrflow") == deep.url("dsrflow") == f"postgresql://postgres@127.0.0.1:{port}/dsrflow"
    odd = EmbeddedPostgres(tmp_path / "a,b" / "pg", port)
    assert odd.local_url("dsrflow") == odd.url("dsrflow")
