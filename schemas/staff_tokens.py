"""What a staff token is, as every layer names it: its roles, lowest first, and the lifetimes the
token lists and the metrics judge it by (dsrflow/stores/staff_tokens.py keeps the tokens)."""

from __future__ import annotations

from datetime import timedelta

ROLES = ("agent", "compliance", "admin")
# The longest lifetime a token may be given: ten years, as DSRFLOW_TOKEN_DAYS allows.
LONGEST_LIFETIME = timedelta(days=3650)
# A token's remaining life the token lists warn about ("expires soon") and the metrics count
# (dsrflow_staff_tokens_expiring): time to issue another.
EXPIRES_SOON = timedelta(days=14)
# The audit event of a token refused requests past its bound of requests opened (api/staff_opens.py),
# read by the console's Tokens page and the metrics (a partial index, migration 0048, finds them).
LIMIT_EVENT = "staff.open_limit_reached"
