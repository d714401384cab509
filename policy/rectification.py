"""Which columns a data subject may have corrected (Art. 16), and what a correction must look like.

A rectification comes from the subject (or an agent on their behalf) and runs against the
controller's systems, so only what the policy names per column may change: a column without
`rectifiable` never does, whatever a correction's key says. The record's key and the column that
links a row to its parent never may (it would move records to someone else); an identity column or
one kept under a statutory hold may only with a stated reason (`why`), because changing it changes
who the records belong to or what an accounting document says.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from policy.strict import StrictModel

# Control characters (a CR/LF in a name would end up in letters and mail headers).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FORMATS = {
    "email": re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"),
    "phone": re.compile(r"\+?[0-9][0-9 ()./-]{3,30}"),
    "postcode": re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]{1,11}"),
}
_FORMAT_WORDS = {
    "email": "an e-mail address",
    "phone": "a phone number (digits, spaces, + ( ) . / -)",
    "postcode": "a postcode (letters, digits, spaces and -)",
}


class Rectifiable(StrictModel):
    """A column a correction may set, and the shape a corrected value must have."""

    max_length: int = Field(ge=1, le=1000)
    format: Literal["text", "email", "phone", "postcode"] = "text"
    # Required on identity and held columns: why correcting it is safe.
    why: str | None = Field(None, min_length=10)
    # What subjects call it ("first name"), translated like the policy's other texts for them: the
    # request form lists what can be corrected in these words and reads them back. Without one,
    # the column's name in words.
    label: str | None = Field(None, min_length=1, max_length=80)

    def problem(self, value: str) -> str | None:
        """Why `value` cannot be this column's corrected value (no value quoted), or None."""
        if not value.strip():
            return "must not be empty"
        if len(value) > self.max_length:
            return f"must be at most {self.max_length} characters"
        if _CONTROL.search(value):
            return "must not contain line breaks or control characters"
        pattern = _FORMATS.get(self.format)
        if pattern is not None and not pattern.fullmatch(value):
            return f"must be {_FORMAT_WORDS[self.format]}"
        return None
