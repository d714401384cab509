"""Server-rendered HTML pages: one Jinja environment for the console, the portal, the evidence
pack and the dashboard.

Every template gets `csrf_token()` (the token its forms send back), `staff` (the signed-in member
of staff, once a console dependency has run) and `controller` (from the policy). Pages are never
cached, never framed.

A page route raises `Problem` like any API route; `problem_pages(template)` gives its router a
route class that renders the problem with that template (status and `Retry-After` kept) instead
of answering problem+json, which a browser would show as raw text.

Pages speak a language (`language` in every template's context, `<html lang>`): the console the
controller's working language (the policy's `languages.staff`), the subject's pages (the portal,
and the public API's pages for a browser) the one the subject chose. A subject chooses with
`?lang=` on any portal page, remembered in a cookie for the portal; without a choice the
browser's `Accept-Language` decides among the policy's supported languages, else the policy's
default. Templates translate with Jinja's i18n extension (`_()`, `ngettext()`, `pgettext()` and
`{% trans %}`, trimmed) from the page language's catalog (dsrflow/i18n), and `longdate` /
`longdatetime` write dates its way, a moment in the controller's timezone with the zone named as
the subject's letters write it (a portal page gives its request's zone as `controller_timezone`).
Staff pages write a moment with `controller_time` (and the day it fell on with `controller_date`):
in the controller's timezone, the one deadline days are counted in, with the zone named, as the
evidence pack does; a page whose request ran under another policy version names that version's
zone as `controller_timezone`. A day (a due date) they write with `longdate` as it is, never ISO
and never moved through a timezone. `_()` is for messages written in templates; a message held
in Python (a label marked `N_`, a problem's words) is shown with the `translate` filter, which
escapes it like any text. A request type is shown with `type_label(kind, regime)`: the label
letters use, citing only the law of the request's regime.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from babel import Locale
from babel.numbers import format_decimal
from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context

from activities.letter_labels import LETTER_TYPE_LABELS, kind_word, type_label
from activities.letter_templates import longdate, longdatetime
from api.csrf import csrf_token
from api.deps import app_state
from api.page_language import (
    LANGUAGE_QUERY,
    page_language,
    remember_choice,
)
from api.problems import Problem
from api.ratelimit import wait_words
from api.read_models.evidence_deadlines import controller_time
from api.request_form import words_in
from dsrflow.domain.deadlines import reconsiders
from dsrflow.i18n import (
    SOURCE_LANGUAGE,
    and_list,
    in_law_words,
    language_name,
    translations,
    without_accents,
    worded,
    wording_of,
)
from schemas.countries import country_codes

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}

def _page_context(request: Request) -> dict[str, Any]:
    # Templates render outside a route's dependencies too (the exception handlers' pages).
    state = app_state(request)
    language = page_language(request)
    return {"csrf_token": lambda: csrf_token(request, state.settings), "staff": getattr(request.state, "staff", None),
            # The controller's texts (its address) in the page's language.
            "controller": state.policy.in_language(language).controller, "language": language}


def _language_of(context: Context) -> str:
    """The page's language; a template rendered without one speaks the staff language."""
    language = context.get("language")
    if language:
        return str(language)
    request = context.get("request")
    if isinstance(request, Request):
        return app_state(request).policy.policy.languages.staff.value
    return SOURCE_LANGUAGE


@pass_context
def _gettext(context: Context, message: str) -> str:
    return translations(_language_of(context)).gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return translations(_language_of(context)).ngettext(singular, plural, n)


@pass_context
def _pgettext(context: Context, message_context: str, message: str) -> str:
    return translations(_language_of(context)).pgettext(message_context, message)


@pass_context
def _npgettext(context: Context, message_context: str, singular: str, plural: str, n: int) -> str:
    return translations(_language_of(context)).npgettext(message_context, singular, plural, n)


@pass_context
def _translate(context: Context, message: str, wording: str | None = None) -> str:
    """A message held in Python (marked `N_` where it is defined), in the page's language; plain
    text, escaped like any other (unlike `_()`, whose result is the template's own markup). With
    `wording`, in the words of that law (dsrflow/i18n `worded`; a `Problem`'s `wording`)."""
    return worded(_language_of(context), wording).gettext(message)


@pass_context
def _correction_words(context: Context) -> dict[str, str]:
    """What the request form may correct, each key with its words in the page's language
    (api/request_form.py `words_in`)."""
    return words_in(app_state(context["request"]).policy, _language_of(context))


@pass_context
def _countries(context: Context) -> tuple[tuple[str, str], ...]:
    """Every country as (code, name), named in the page's language and listed by that name: a
    form asks for "Germany" or "Allemagne", never a code (a German typing GE was recorded as
    living in Georgia, in the evidence and in the authority a refusal names, Art. 77)."""
    return countries_named(_language_of(context))


@cache
def countries_named(language: str) -> tuple[tuple[str, str], ...]:
    names = Locale.parse(language).territories
    # "Égypte" among the E's, not after "Zimbabwe".
    return tuple(sorted(((code, names.get(code, code)) for code in country_codes()),
                        key=lambda country: without_accents(country[1]).casefold()))


# A detail that starts with the field it is about ("type: must be text"): the field's name as the
# form has it, never capitalised.
_FIELD_FIRST = re.compile(r"[a-z_]+: ")


def _sentence(text: str) -> str:
    """A message worded to follow a field's name or a title ("this download link has expired; ask
    us for a new one", as the API gives it), written as a sentence of its own on a page: a capital
    first letter (unless it names its field first) and a full stop."""
    text = text.strip()
    if not text:
        return text
    if not _FIELD_FIRST.match(text):
        text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?…" else f"{text}."


@pass_context
def _type_label(context: Context, kind: str, regime: str | None = None) -> str:
    """A request type's label in the page's language, named as `regime`'s law names it, as the
    letters do (activities/letter_labels.py `type_label`), citing its article where it is the GDPR's or
    the UK GDPR's. The new-request forms name no regime: it follows from the country typed on the
    same form, so they cite no law."""
    language = _language_of(context)
    return type_label(kind, regime, worded(language, wording_of(regime)) if regime else translations(language))


@pass_context
def _longdate(context: Context, value: date | datetime | str, timezone: str | None = None) -> str:
    """A date; a moment's the day it fell on in the controller's timezone, as its letters say (in
    a list of requests, `timezone`: each one's own policy version's). A day the trail holds as an
    ISO string (a kept record's `until`) reads like any other: a day, never moved through a timezone."""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return longdate(day, _language_of(context), timezone or _controller_timezone(context))


@pass_context
def _longdatetime(context: Context, value: datetime) -> str:
    """A moment as the subject's letters write it: "31 December 2026, 00:30 CET (UTC+1)"."""
    return longdatetime(value, _language_of(context), _controller_timezone(context))


def _controller_timezone(context: Context) -> str:
    """The timezone the page's request counts its deadline days in (`controller_timezone`, its
    policy version's), else the policy in force's."""
    zone = context.get("controller_timezone")
    return str(zone) if zone else app_state(context["request"]).policy.policy.defaults.timezone


@pass_context
def _controller_time(context: Context, value: datetime, seconds: bool = False) -> str:
    """A moment in the controller's timezone, the zone named ("5 January 2027, 00:30 CET"): a
    request received at 00:30 in Brussels read as the day before in UTC, beside due dates counted
    from the Brussels day."""
    return controller_time(value, _controller_timezone(context), _language_of(context), seconds=seconds)


@pass_context
def _decimal(context: Context, value: float, digits: int = 1) -> str:
    """A number with `digits` decimals as the page's language writes it ("20.5", "20,5")."""
    return format_decimal(value, format="#,##0." + "0" * digits if digits else "#,##0",
                          locale=_language_of(context))


@pass_context
def _language_links(context: Context) -> list[dict[str, Any]]:
    """The subject's choice of language, for a portal page: one link per supported language,
    named in itself, to this page in that language (`?lang=`). A page answering a form names
    the page to go back to as `here` (there is no page at a form's address to reload), with the
    query that opens it as it was (the verify page). The request and complaint forms sent back
    offer buttons instead (portal/base.html `retype`), which send the form back as typed."""
    request: Request = context["request"]
    languages = app_state(request).policy.policy.languages
    query: list[tuple[str, str]] = []
    if context.get("here"):
        here, _, kept = str(context["here"]).partition("?")
        query = [(k, v) for k, v in parse_qsl(kept) if k != LANGUAGE_QUERY]
    elif request.method in ("GET", "HEAD"):
        here = request.url.path
        query = [(k, v) for k, v in request.query_params.multi_items() if k != LANGUAGE_QUERY]
    else:
        here = "/portal"
    return [{"code": lang.value, "name": language_name(lang.value), "current": lang.value == context.get("language"),
             "href": f"{here}?{urlencode([*query, (LANGUAGE_QUERY, lang.value)])}"}
            for lang in languages.supported]


templates = Jinja2Templates(directory=Path(__file__).with_name("templates"), context_processors=[_page_context])
templates.env.add_extension("jinja2.ext.i18n")
# One line per message in the catalogs however a template wraps a `{% trans %}` block.
templates.env.policies["ext.i18n.trimmed"] = True
templates.env.install_gettext_callables(  # type: ignore[attr-defined]  # added by the i18n extension
    _gettext, _ngettext, newstyle=True, pgettext=_pgettext, npgettext=_npgettext)
# JSON to read on a page (autoescaped like any text; `tojson` would show "<" as \u003c).
templates.env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
templates.env.filters["longdate"] = _longdate
templates.env.filters["longdatetime"] = _longdatetime
templates.env.filters["controller_time"] = _controller_time
# The day a moment fell on in the controller's calendar (the day of receipt the deadline counts).
templates.env.filters["controller_date"] = _longdate
templates.env.filters["decimal"] = _decimal
templates.env.filters["translate"] = _translate
templates.env.filters["sentence"] = _sentence
# A wait (`Retry-After`'s seconds) in words, in the page's language: "24 hours", not "86400 seconds".
templates.env.filters["wait"] = pass_context(lambda context, seconds: wait_words(int(seconds), _language_of(context)))
# The request types, in the order the forms offer them, and their labels (`type_label(kind, regime)`).
templates.env.globals["request_types"] = tuple(LETTER_TYPE_LABELS)
templates.env.globals["type_label"] = _type_label
# A request's type as staff read it, in the words of its law ("deletion" under the CCPA), and a
# staff page's own sentence in them (`in_law_words`): the console is English, as its words.
templates.env.globals["kind_word"] = kind_word
templates.env.globals["in_law_words"] = in_law_words
templates.env.globals["language_links"] = _language_links
templates.env.globals["correction_words"] = _correction_words
templates.env.globals["countries"] = _countries
templates.env.globals["reconsiders"] = reconsiders  # "appeal" or "complaint": what a follow-up of a refusal is


def _in_systems(ids: Iterable[str], label: Callable[[str], str | None]) -> str:
    """Systems by id where the console's English says where something is: "in the system “Billing
    (…)”", "in the systems “CRM (…)” and “Billing (…)”". A label after a bare "in" read wrong ("in
    Survey service provider"), and the console shows labels in the staff language, which no English
    preposition fits: the label in quotes is a name (activities/letter_systems.py for letters)."""
    names = [f"“{label(s) or s}”" for s in ids]
    return f"in the system{'s' if len(names) > 1 else ''} {and_list(names)}"


templates.env.globals["in_systems"] = _in_systems


# htmx swaps an answer into the element that asked for it (a live region polling, or an action's
# form). A whole page there would show a second header inside the page. So a page answering an
# action (an error, a refusal, the service unavailable) replaces the page's <main> instead, and
# one answering a poll is not swapped at all: the page stays as it is until a poll succeeds.
_HTMX_WHOLE_PAGE = {"HX-Retarget": "main", "HX-Reselect": "main", "HX-Reswap": "outerHTML"}
_HTMX_POLL = {"HX-Reswap": "none"}


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    htmx = ({} if not request.headers.get("hx-request")
            else _HTMX_POLL if request.method == "GET" else _HTMX_WHOLE_PAGE)
    response = templates.TemplateResponse(
        request, name, context or {}, status_code=status_code,
        headers={**PAGE_HEADERS, "Content-Language": page_language(request), **htmx, **(headers or {})},
    )
    remember_choice(request, response)
    return response


def render_fragment(request: Request, name: str, context: dict[str, Any]) -> str:
    """A template rendered to a string with the pages' common context (for live regions)."""
    return templates.get_template(name).render({**_page_context(request), "request": request, **context})


def prefers_html(accept: str | None) -> bool:
    """Whether an `Accept` header names HTML ahead of JSON, as a browser's does. `*/*` alone
    (curl, most HTTP libraries) is an API client's."""
    weights: dict[str, float] = {}
    for part in (accept or "").split(","):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media.lower()] = weight
    html = weights.get("text/html", 0.0)
    return html > 0 and html >= weights.get("application/json", 0.0)


def problem_pages(template: str) -> type[APIRoute]:
    """A route class whose `Problem`s become `template` pages (context: `problem`)."""

    class ProblemPageRoute(APIRoute):
        def get_route_handler(self) -> Callable:
            handler = super().get_route_handler()

            async def route(request: Request) -> Response:
                try:
                    return await handler(request)
                except Problem as problem:
                    retry = problem.extra.get("retry_after")
                    return render(request, template, {"problem": problem}, status_code=problem.status,
                                  headers={"Retry-After": str(retry)} if retry else None)

            return route

    return ProblemPageRoute
