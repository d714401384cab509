"""The compliance dashboard: four charts drawn on the server as inline SVG (no JavaScript), each
with its numbers in a table beside it for screen readers and for checking."""

from __future__ import annotations

from typing import Annotated

from babel.dates import format_date
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from api.auth import Staff, require_console_role
from api.deps import PolicyInForce, Pool, Today
from api.page_language import page_language
from api.pages import render
from api.read_models.dashboard_queries import closed_per_month, month_starts, open_by_due_week, requests_per_month
from api.read_models.svg import bar_chart, line_chart

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)
MONTHS = 12


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(staff: Annotated[Staff, require_console_role("compliance")], request: Request, pool: Pool,
                    today: Today, policy: PolicyInForce) -> HTMLResponse:
    timezone, language = policy.policy.defaults.timezone, page_language(request)
    # The axes' labels short, in the page's language ("Dez. 26", "7 Dez."); the tables write each
    # due week's Monday as the console writes a day.
    months = [format_date(m, "MMM yy", locale=language) for m in month_starts(today, MONTHS)]
    per_type = await requests_per_month(pool, today=today, timezone=timezone, months=MONTHS)
    closed = await closed_per_month(pool, today=today, timezone=timezone, months=MONTHS)
    due = await open_by_due_week(pool, today=today)
    due_labels = [format_date(b.start, "d MMM", locale=language) if b.start is not None else b.label for b in due]
    charts = [
        ("received", "Requests received per month, by type", months,
         bar_chart("received", months, per_type or {"none": [0] * MONTHS}, legend=True,
                   title="Requests received per month",
                   description="Stacked bars: requests received each month, by type, last 12 months.")),
        ("median", "Median days from receipt to answer, by month answered", months,
         line_chart("median", months, [m.median_days for m in closed], title="Median days to close",
                    description="Median number of days from receipt to the answer, by month of answer.")),
        ("ontime", "Share answered on time, by month answered", months,
         bar_chart("ontime", months, {"on time": [m.on_time_share or 0 for m in closed]}, top=1.0, whole=False,
                   fmt=_percent, title="Share answered on time",
                   description="Share of the requests answered each month that were answered by their due date.")),
        ("dueweek", "Open requests by due week", due_labels,
         bar_chart("dueweek", due_labels, {"open": [b.count for b in due]}, title="Open requests by due week",
                   description="Open requests by the week of their current due date; overdue first. "
                               "UK GDPR requests awaiting verification are not counted: their month "
                               "has not started.")),
    ]
    return render(request, "console/dashboard.html", {
        "charts": [(ident, caption, Markup(svg)) for ident, caption, _, svg in charts],
        "months": months, "per_type": per_type, "closed": closed, "due": list(zip(due_labels, due, strict=True)),
    })
