"""Text that reaches a mail header, a letter or a spreadsheet: what it may carry.

A name or an identifier is one line: a CR/LF in it would start a new header (or forge a line of
a letter), and other control characters (escape sequences, NUL, Unicode line separators) have no
place in either. Free text written by staff (a reason, an explanation) may hold line breaks,
which a browser's text area sends, but no other control character.

Intake refuses both (422 naming the field, `OneLine` / `FreeText`); rendering folds what is left
to one line anyway (`one_line`), as defence in depth for rows stored before these checks or
written by another path.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_LINE_BREAKS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_RUNS = re.compile(r"\s*[\x00-\x1f\x7f-\x9f\u2028\u2029][\s\x00-\x1f\x7f-\x9f\u2028\u2029]*")


def one_line(value: str) -> str:
    """The text with every run of control characters (and the spaces around it) as one space."""
    return _CONTROL_RUNS.sub(" ", value).strip()


def _refuse_controls(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must be one line, without line breaks or control characters")
    return value


def refused_control(value: str) -> str | None:
    """Why free text is refused (a control character other than a line break), or None."""
    return "must not contain control characters" if _CONTROL_BUT_LINE_BREAKS.search(value) else None


def _refuse_controls_but_line_breaks(value: str) -> str:
    if reason := refused_control(value):
        raise ValueError(reason)
    return value


OneLine = Annotated[str, AfterValidator(_refuse_controls)]
# FreeText's check alone, for a bounded optional text (`Annotated[str, StringConstraints(...),
# FREE_TEXT] | None`): bounds given on the union, or after this check, were worded in "items".
FREE_TEXT = AfterValidator(_refuse_controls_but_line_breaks)
FreeText = Annotated[str, FREE_TEXT]

# Unicode's bidirectional embeddings, overrides and isolates: they make the text after them read
# in another order ("\u202eAda" and the like), so that what is shown is not what was written.
_DIRECTION_CONTROL_RANGES = "\u202a-\u202e\u2066-\u2069"
DIRECTION_CONTROLS = re.compile(f"[{_DIRECTION_CONTROL_RANGES}]")
# Those, and the direction marks: what staff write (a label, a reason for the subject) needs none.
_REORDERING = re.compile(f"[\u061c\u200e\u200f{_DIRECTION_CONTROL_RANGES}]")


def refuse_reordering(value: str) -> str:
    """`value`, unless it holds marks that reorder it (ValueError)."""
    if _REORDERING.search(value):
        raise ValueError("must not contain marks that reorder text (right-to-left overrides and the like)")
    return value


# What shows nothing on a page or in a letter: spaces and separators of every kind, format characters
# (zero-width spaces and joiners, the marks above), controls, combining marks with nothing to combine
# with, and the letters and symbols fonts draw blank (Hangul fillers, the blank Braille pattern).
_SHOWS_NOTHING_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cf", "Cc", "Mn", "Me"})
_DRAWN_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _shows(ch: str) -> bool:
    return not ch.isspace() and ch not in _DRAWN_BLANK and unicodedata.category(ch) not in _SHOWS_NOTHING_CATEGORIES


def refuse_blank(value: str) -> str:
    """`value`, unless it is not empty and shows nothing (ValueError): twelve spaces, line breaks,
    zero-width spaces or ideographic ones passed a length of ten and reached a letter as an empty
    quotation under its heading, or the timeline as a statement recorded with no words."""
    if value and not any(_shows(ch) for ch in value):
        raise ValueError("must say something: it holds only spaces or characters that show nothing")
    return value


_UNICODE_BREAKS = re.compile("[\u2028\u2029]")


def kept_text(value: str, limit: int) -> str | None:
    """Free text someone outside wrote (a processor's note), as we keep it for staff to read:
    its line breaks and tabs, Unicode's line and paragraph separators as line breaks, no other
    control character (a NUL makes PostgreSQL refuse the row; escape sequences reach whoever
    reads it in a terminal) and no mark that reorders it; at most `limit` characters, None when
    nothing is left."""
    kept = _REORDERING.sub("", _CONTROL_BUT_LINE_BREAKS.sub("", _UNICODE_BREAKS.sub("\n", value)))
    return kept.strip()[:limit] or None


def shown_line(value: str, limit: int) -> str:
    """A name someone outside chose (a processor's dataset or a column of its records), as staff
    and subjects may read it: one line, without marks that reorder it, at most `limit`
    characters (an ellipsis where it was cut). Escaping is the page's; this is what escaping
    leaves: a right-to-left override makes `gpj.exe` read as `exe.jpg`, and a name of a
    megabyte fills the page."""
    text = _REORDERING.sub("", one_line(value))
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "\u2026"


# Characters a zip entry's folder or file name must not hold: separators (an absolute path, `..`
# climbing out of the folder it is unpacked into), and those Windows refuses in a file name.
_NOT_IN_ENTRY = frozenset('/\\:*?"<>|')


def entry_segment(name: str) -> str:
    """One folder or file name of a zip entry, from a name someone outside chose (an OpenDSR
    dataset): no separators, no character that is not printable (controls, and the marks that
    reorder a name: `\\u202egpj.exe` reads as `exe.jpg`), no leading dot (a hidden file), short."""
    cleaned = "".join("_" if ch in _NOT_IN_ENTRY or not ch.isprintable() else ch for ch in name)
    return cleaned.strip().lstrip(".")[:100] or "_"


# One line staff give that other staff read, written in the order it reads: a token's label, which
# names its holder wherever they acted (the timeline, notes, assignments; the API and the CLI both
# refuse any other: dsrflow/stores/staff_tokens.py), a legal hold's customer id.
StaffLine = Annotated[str, AfterValidator(_refuse_controls), AfterValidator(refuse_reordering)]
# What staff write for other staff to read (a note, a resume reason, a legal hold's reason): lines
# of text, in the order they read. Not for workflow inputs, which histories already hold.
StaffText = Annotated[str, AfterValidator(_refuse_controls_but_line_breaks), AfterValidator(refuse_reordering),
                     AfterValidator(refuse_blank)]

# Spreadsheets run a cell that starts with one of these as a formula (or, tab and CR, after
# trimming it): =HYPERLINK(...) leaks data, =cmd|... runs programs (CSV injection).
FORMULA_START = "=+-@\t\r"
# A cell that is a plain decimal number is read as that number, never as a formula: a credit
# note's -12.50 or an exponent's 1e-5 stays as it is.
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
# The same two rules for PostgreSQL, whose COPY writes the `sql` systems' CSV rows itself. The
# first character is tested by its code (`ascii`): on a million cells that costs far less than a
# regular expression, and the number's expression runs only on the rare cells that start so.
SQL_FORMULA_CODES = ", ".join(str(ord(c)) for c in FORMULA_START)
SQL_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def csv_cell(value: str) -> str:
    """A text cell as a spreadsheet can open it safely: one that would run as a formula gets a
    leading apostrophe, which spreadsheets show as text and do not display (OWASP's advice)."""
    if value[:1] and value[0] in FORMULA_START and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def sql_csv_cell(expression: str, text: bool = False) -> str:
    """`csv_cell` as a PostgreSQL expression over any value, as text in the type's own output
    (format's %s; a cast would write an inet as 1.2.3.4/32), or as it is where it already is
    `text` (text, varchar, a cast to text: not char(n), whose padding `||` would drop). NULL
    stays NULL."""
    value = expression if text else f"format('%s', {expression})"
    cell = (f"CASE WHEN ascii({value}) IN ({SQL_FORMULA_CODES}) AND {value} !~ '{SQL_NUMBER}' "
            f"THEN '''' || {value} ELSE {value} END")
    # ascii(NULL) is NULL, so a NULL text stays NULL; format() would write it as ''.
    return f"({cell})" if text else f"(CASE WHEN {expression} IS NULL THEN NULL ELSE {cell} END)"


# An e-mail address in text someone else wrote: a relay's refusal quotes the recipient ("550 5.1.1
# <ada@example.com>: Recipient address rejected"), a processor's error may name the subject, in a
# URL too ("?email=ada%40example.com"). An address is a run of characters none of which separates
# words in such text, holding an "@" (or "%40") with something either side. Found run by run, each
# split at its "@"s, not by one pattern: `[^...]+@[^...]+` scanned the rest of a run from each of
# its characters, quadratic (a processor's error of 100 kB of letters took 28 s of CPU).
_RUN = re.compile(r"[^\s<>,;:\"'()\[\]]+")
_AT = re.compile(r"(@|%40)", re.IGNORECASE)


def _run_without_addresses(run: re.Match[str]) -> str:
    # [part, "@", part, "@", part, ...] (parts at even places): a part and the next, both not
    # empty, are an address, as the leftmost match of the pattern would take them.
    pieces = _AT.split(run.group())
    out: list[str] = []
    i = 0
    while i < len(pieces):
        if i % 2 == 0 and i + 2 < len(pieces) and pieces[i] and pieces[i + 2]:
            out.append("<address>")
            i += 3
        else:
            out.append(pieces[i])
            i += 1
    return "".join(out)


def without_addresses(text: str) -> str:
    """`text` with every e-mail address in it replaced, in time linear in the text: a failure's
    message goes into Temporal's history in clear (no payload codec reaches it), onto the request
    page and into staff alerts, which carry no personal data (attacker audit)."""
    return _RUN.sub(_run_without_addresses, text) if "@" in text or "%" in text else text
