"""A wrong argument to a `dsrflow` command is named as the operator typed it: the option, not the
domain's parameter behind it. Run in-process (typer's runner): nothing here needs the stack."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app


@pytest.mark.parametrize(("args", "said"), [
    (["--regime", "gdrp", "--received", "2026-01-05"], "error: --regime: unknown 'gdrp'"),
    (["--regime", "gdpr", "--country", "ZZ", "--received", "2026-01-05"], "error: --country: 'ZZ' is not"),
    (["--regime", "lgpd", "--appeal", "--received", "2026-01-05"], "error: --regime: lgpd grants no appeal"),
])
def test_deadline_names_the_option_at_fault(args, said):
    """Before, `regime: unknown 'gdrp'` and `country: ...`, beside `--received: expected a date`."""
    told = CliRunner().invoke(app, ["deadline", *args])
    assert told.exit_code == 2 and said in told.stderr, told.output
