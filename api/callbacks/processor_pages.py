"""The pages a processor's link opens (api/callbacks/manual_confirm.py): the confirmation form, the
upload form and their answers, in the language and the words of the e-mail that carried the link.

A processor reads the controller's staff language (the `languages.staff` of the policy version the
request runs under), in the words the request's law names the parties with ("consumer", "service
provider or contractor" under the CCPA): `processor_words` (activities/processor_mail.py) decides,
as it does for the e-mails. A page that knows no request yet (a link not recognised, a client over
its limit before the token is read) speaks the staff language of the policy in force, in the
GDPR's words. Every page is rendered here, under the same headers (the link is a credential), from
the templates in api/templates/processor/ with the pages' environment (api/pages.py, autoescaped),
their words from the reader's translator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from activities.processor_mail import processor_words
from api.callbacks.link_answers import NOTE_MAX, limits_of, refuse_if_closed
from api.callbacks.link_refusals import UploadRefused
from api.callbacks.processor_uploads import FILE_FIELD, accepted_types
from api.pages import templates
from api.ratelimit import wait_words
from dsrflow.domain.references import short_reference
from dsrflow.i18n import N_, SOURCE_LANGUAGE, Translator, long_datetime

_ACTIONS = {
    "erase": N_("erase the data subject's personal data"),
    "rectify": N_("correct the data subject's personal data"),
    "restrict": N_("restrict the processing of the data subject's personal data"),
    "lift_restriction": N_("end the restriction of processing of the data subject's personal data"),
    "object": N_("stop the processing the data subject objected to"),
    "access": N_("send us your export of the data subject's personal data"),
}
# The link is a credential: keep it out of caches, referrers, search engines and frames.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}


@dataclass(frozen=True)
class Reader:
    """Who reads a page: its `language` and the words of the request's law in it (`t`)."""

    language: str
    t: Translator


def reader(language: str, regime: str | None = None) -> Reader:
    """The reader of a page in `language` (a staff language), worded as `regime`'s law words the
    e-mails to processors; the GDPR's words without a request (None)."""
    return Reader(language, processor_words(language, regime))


def reader_of(task: dict[str, Any]) -> Reader:
    """The reader of a task's pages: the staff language of its request's policy version (the
    policy's default where it names none), in the words of its request's law."""
    return reader(task["staff_language"] or SOURCE_LANGUAGE, task["regime"])


def _words(t: Translator) -> dict[str, Any]:
    """A page's `_()`, `gettext()` and `ngettext()`: the reader's translator, called as Jinja's i18n
    extension calls them (`newstyle`, the placeholders' values given by name). The message is
    escaped like any text, then filled with its values, escaped too (a file's name, a label). They
    come before the environment's own, which translate without the request's law's words."""

    def gettext(message: str, **values: Any) -> Markup:
        return escape(t.gettext(message)) % values

    def ngettext(singular: str, plural: str, n: int, **values: Any) -> Markup:
        return escape(t.ngettext(singular, plural, n)) % {"num": n, **values}

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext}


def _page(r: Reader, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(f"processor/{template}").render(
        {**_words(r.t), "language": r.language, **context})
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def not_found(r: Reader) -> HTMLResponse:
    return _page(r, "not_found.html", status=404)


def over_limit(r: Reader, retry: int) -> HTMLResponse:
    """The page telling a client over its limit to wait `retry` seconds (api/ratelimit.py)."""
    page = _page(r, "over_limit.html", status=429, wait=wait_words(retry, r.language))
    page.headers["Retry-After"] = str(retry)
    return page


def _details(task: dict[str, Any], r: Reader) -> dict[str, str]:
    """What the link is about, for the table under a page (processor/_details.html)."""
    action = r.t.gettext(_ACTIONS[task["action"]]) if task["action"] in _ACTIONS else task["action"]
    return {"controller": task["controller"] or "", "processor": task["label"] or task["system"], "action": action,
            "reference": short_reference(task["request_id"])}


def _when(task: dict[str, Any], r: Reader) -> str:
    """When the processor answered, on the controller's clock (its request's policy version's
    timezone, named), as the e-mail that carried the link writes its times."""
    return long_datetime(task["confirmed_at"], r.language, task.get("timezone") or "UTC")


def received(task: dict[str, Any], r: Reader, names: list[str]) -> str:
    """What we have of a processor's answered export (`names`: its files), for a processor who
    asks again (its first page lost to a crash or an outage) and must not be left wondering
    whether to send it again by other means."""
    if not names:
        return r.t.gettext("On %(when)s you told us that you hold no personal data about this person.") % {
            "when": _when(task, r)}
    return r.t.ngettext("We received your export on %(when)s: %(count)d file (%(names)s).",
                        "We received your export on %(when)s: %(count)d files (%(names)s).", len(names)) % {
        "when": _when(task, r), "count": len(names), "names": ", ".join(names)}


def already(task: dict[str, Any], r: Reader, what: str | None = None) -> HTMLResponse:
    """A link answered already, opened again: what we have (`what`, of an export: `received`),
    and that nothing more is needed."""
    return _page(r, "already.html", what=what, when=None if what else _when(task, r), details=_details(task, r))


def confirm_form(task: dict[str, Any], r: Reader) -> HTMLResponse:
    return _page(r, "confirm_form.html", details=_details(task, r), note_max=NOTE_MAX)


def confirmed(task: dict[str, Any], r: Reader) -> HTMLResponse:
    return _page(r, "confirmed.html", details=_details(task, r))


def upload_form(task: dict[str, Any], r: Reader, problem: UploadRefused | None = None) -> HTMLResponse:
    """The form a processor sends its export with (or says it holds nothing)."""
    limits = limits_of(task)
    try:
        refuse_if_closed(task, limits)
    except UploadRefused as closed:
        return refused(task, r, closed)
    return _page(r, "upload_form.html", status=problem.status if problem else 200,
                 problem=problem.said(r.t) if problem else None, details=_details(task, r), file_mb=limits.max_file_mb,
                 total_mb=limits.max_total_mb, file_field=FILE_FIELD, accept=accepted_types(limits), note_max=NOTE_MAX)


# The title of a refusal without one of its own, by its status.
_REFUSED_TITLES = {409: N_("Already answered"), 403: N_("Link expired")}
_REFUSED = N_("Upload refused")


def refused(task: dict[str, Any], r: Reader, refusal: UploadRefused) -> HTMLResponse:
    t = r.t
    title = refusal.title(t) if refusal.title else t.gettext(_REFUSED_TITLES.get(refusal.status, _REFUSED))
    return _page(r, "refused.html", status=refusal.status, title=title, said=refusal.said(t),
                 details=_details(task, r))


def export_received(task: dict[str, Any], r: Reader, names: list[str]) -> HTMLResponse:
    """The answer to an export kept: the files' names, or that the processor holds nothing."""
    return _page(r, "export_received.html", names=names, details=_details(task, r))
