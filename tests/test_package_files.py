"""The JSON and CSV files of an access package, as the subject opens them: the records of one
(system, dataset, category) spooled and written into the zip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from activities.packages import _Spool
from tests.support import read_spool


def _files(records: list[dict]) -> tuple[list, list[list[str]]]:
    spool = _Spool("crm", "contacts", "account")
    for record in records:
        spool.add(record, dict.fromkeys(record, "provided"))
    return read_spool(spool)


def test_values_read_the_same_in_json_and_csv() -> None:
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    record = {"name": "Zoë \"Z\" Peeters", "note": "line one\nline two", "amount": Decimal("12.10"),
              "seen_at": when, "tags": {"since": when, "list": [1, "é"]}, "missing": None, "vip": True}
    data, rows = _files([record])
    assert data == [{"name": "Zoë \"Z\" Peeters", "note": "line one\nline two", "amount": "12.10",
                     "seen_at": when.isoformat(), "tags": {"since": when.isoformat(), "list": [1, "é"]},
                     "missing": None, "vip": True}]
    assert rows == [list(record),
                    ["Zoë \"Z\" Peeters", "line one\nline two", "12.10", when.isoformat(),
                     json.dumps({"since": when.isoformat(), "list": [1, "é"]}), "", "True"]]


def test_a_column_first_seen_in_a_later_record_gets_a_csv_column_for_every_row() -> None:
    data, rows = _files([{"email": "a@example.com"}, {"email": "b@example.com", "phone": "+32 470"},
                         {"phone": "+32 471"}])
    assert [list(r) for r in data] == [["email"], ["email", "phone"], ["phone"]]
    # A phone number's leading + would make a spreadsheet read it as a formula (schemas/plain_text.py).
    assert rows == [["email", "phone"], ["a@example.com", ""], ["b@example.com", "'+32 470"], ["", "'+32 471"]]


def test_a_processors_formulas_in_values_and_column_names_open_as_text() -> None:
    """CSV injection (issue 14, item 10) from a processor's export: values and column names."""
    data, rows = _files([{"=cmd|' /C calc'!A0": "x", "total": -3, "credit": Decimal("-12.50"),
                          "label": "-5 + 2", "note": "\r=1+1", "ok": "3-2"}])
    assert rows == [["'=cmd|' /C calc'!A0", "total", "credit", "label", "note", "ok"],
                    ["x", "-3", "-12.50", "'-5 + 2", "'\r=1+1", "3-2"]]
    assert data[0]["label"] == "-5 + 2" and data[0]["note"] == "\r=1+1"


def test_many_records_spill_to_disk_and_all_arrive() -> None:
    data, rows = _files([{"n": n, "url": f"https://onetagger.com/p/{n}"} for n in range(20_000)])
    assert len(data) == 20_000 and data[-1] == {"n": 19_999, "url": "https://onetagger.com/p/19999"}
    assert len(rows) == 20_001 and rows[-1] == ["19999", "https://onetagger.com/p/19999"]


def test_dataset_names_a_processor_chose_cannot_place_files_outside_the_package(tmp_path) -> None:
    """Zip slip (issue 14, item 12): an OpenDSR processor names its datasets; the package's
    entries stay relative, inside their system's folder, without `..` or control characters,
    and unpacking the package writes nothing outside the folder it is unpacked into."""
    import io
    import os
    import zipfile

    from activities.packages import _write_archive
    from activities.processor_exports import ProcessorFiles
    from dsrflow.crypto.filecrypt import EncryptedWriter, file_key
    from dsrflow.crypto.package_files import FILE_PURPOSE, read_package
    from dsrflow.infra.storage import LocalStore

    secret = os.urandom(32)
    spools = {}
    for dataset in ("../../../../tmp/evil", "/etc/cron.d/job", "..", "C:\\Windows\\x", "a\r\nb\x1b[2J\x00",
                    ".hidden"):
        spool = _Spool("email_marketing", dataset, "marketing")
        spool.add({"email": "ada@example.com"}, {"email": "provided"})
        spools[("email_marketing", dataset, "marketing")] = spool
    (tmp_path / "packages").mkdir()
    path = tmp_path / "packages" / "p.zip.enc"
    writer = EncryptedWriter(open(path, "wb"), file_key(secret, FILE_PURPOSE), "p")
    _write_archive(writer, spools, "<html></html>", ProcessorFiles(), LocalStore(tmp_path), secret)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(read_package([path.read_bytes()], secret, "p"))))
    names = [n for n in archive.namelist() if n != "summary.html"]
    assert len(names) == 12
    for name in names:
        parts = name.split("/")
        assert parts[:2] == ["email_marketing", "marketing"] and len(parts) == 3, name
        assert ".." not in parts and not parts[-1].startswith(".") and "\\" not in name
        assert all(ch.isprintable() for ch in name), name
    target = tmp_path / "unpacked"
    archive.extractall(target)
    assert all(p.resolve().is_relative_to(target.resolve()) for p in target.rglob("*"))
