"""Field types shared by request bodies."""

from __future__ import annotations

from schemas.plain_text import FreeText

# Staff-written text (reasons, explanations, notes, labels): line breaks from a text area, but no
# other control character. NUL, which PostgreSQL can store neither in text nor in jsonb, is one:
# refused here, naming the field, rather than failing later in a workflow's activity.
Text = FreeText
