"""The pages a processor's link opens (api/callbacks/manual_confirm.py): the confirmation form, the
upload form and their answers, in the language and the words of the e-mail that carried the link.

A processor reads the controller's staff language (the `languages.staff` of the policy version the
request runs under), in the words the request's law names the parties with ("consumer", "service
provider or contractor" under the CCPA): `processor_words` (activities/processor_mail.py) decides,
as it does for the e-mails. A page that knows no request yet (a link not recognised, a client over
its limit before the token is read) speaks the staff language of the policy in force, in the
GDPR's words. Every page is built here, under the same headers: the link is a credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from fastapi.responses import HTMLResponse

from activities.processor_mail import processor_words
from api.callbacks.link_refusals import UploadRefused
from api.callbacks.processor_uploads import FILE_FIELD, NOTE_MAX, accepted_types, limits_of, refuse_if_closed
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
_STYLE = """
body { margin: 0; background: #f3f4f6; color: #1f2937; font: 16px/1.5 Arial, Helvetica, sans-serif; }
main { max-width: 40rem; margin: 2rem auto; padding: 1.5rem 2rem; background: #fff; border: 1px solid #d1d5db; }
h1 { font-size: 1.4rem; line-height: 1.3; color: #111827; margin: 0 0 1rem; }
table { border-collapse: collapse; width: 100%; margin: 0 0 1rem; }
th, td { text-align: left; vertical-align: top; padding: .4rem .6rem; border: 1px solid #d1d5db; }
th { background: #f3f4f6; width: 40%; }
label { display: block; font-weight: bold; margin: 1rem 0 .3rem; }
.hint { color: #374151; font-size: .9rem; margin: 0 0 .4rem; }
input[type=file] { display: block; font: inherit; }
.problem { border-left: 4px solid #b91c1c; padding: .5rem 1rem; background: #fef2f2; }
textarea { width: 100%; box-sizing: border-box; font: inherit; padding: .5rem; border: 1px solid #4b5563; }
button { margin-top: 1rem; padding: .7rem 1.3rem; font: inherit; font-weight: bold; color: #fff;
         background: #1d4ed8; border: 2px solid #1d4ed8; border-radius: 4px; cursor: pointer; }
:focus-visible { outline: 3px solid #b45309; outline-offset: 2px; }
.ok { border-left: 4px solid #047857; padding: .5rem 1rem; background: #ecfdf5; }
"""


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


def _page(r: Reader, title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        f'<!DOCTYPE html>\n<html lang="{escape(r.language)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{escape(title)}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def not_found(r: Reader) -> HTMLResponse:
    t = r.t
    return _page(r, t.gettext("Link not recognised"), "<p>" + escape(t.gettext(
        "This confirmation link is not valid. Please check that you copied the whole address from our e-mail, "
        "or reply to that e-mail.")) + "</p>", status=404)


def over_limit(r: Reader, retry: int) -> HTMLResponse:
    """The page telling a client over its limit to wait `retry` seconds (api/ratelimit.py)."""
    said = r.t.gettext("Too many requests from your network: please try again in %(wait)s.") % {
        "wait": wait_words(retry, r.language)}
    page = _page(r, r.t.gettext("Too many requests"), f'<p class="problem" role="alert">{escape(said)}</p>',
                 status=429)
    page.headers["Retry-After"] = str(retry)
    return page


def _details(task: dict[str, Any], r: Reader) -> str:
    t = r.t
    action = t.gettext(_ACTIONS[task["action"]]) if task["action"] in _ACTIONS else task["action"]
    rows = ((t.gettext("Controller"), task["controller"] or ""), (t.gettext("Processor"), task["label"] or task["system"]),
            (t.gettext("What we asked"), action), (t.gettext("Our request reference"), short_reference(task["request_id"])))
    return "<table>\n" + "".join(f'<tr><th scope="row">{escape(th)}</th><td>{escape(td)}</td></tr>\n'
                                 for th, td in rows) + "</table>"


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
    t = r.t
    said = what or t.gettext("This request was confirmed on %(when)s.") % {"when": _when(task, r)}
    done = t.gettext("Thank you: there is nothing more to do.")
    return _page(r, t.gettext("Already confirmed"),
                 f'<p class="ok">{escape(said)} {escape(done)}</p>\n{_details(task, r)}')


def confirm_form(task: dict[str, Any], r: Reader) -> HTMLResponse:
    t = r.t
    note, button = t.gettext("Note (optional)"), t.gettext("Confirm that the request has been carried out")
    return _page(
        r, t.gettext("Confirm a data-subject request"),
        "<p>" + escape(t.gettext("We asked you by e-mail to act on a data-subject request. When you have done so, "
                                 "please confirm below.")) + "</p>\n"
        f"{_details(task, r)}\n"
        '<form method="post">\n'
        f'<label for="note">{escape(note)}</label>\n'
        '<p class="hint" id="note-hint">' + escape(t.gettext(
            "For example, that you held no data about this person, or what you could not do and why. Please do not "
            "include the person's data.")) + "</p>\n"
        f'<textarea id="note" name="note" rows="4" maxlength="{NOTE_MAX}" aria-describedby="note-hint"></textarea>\n'
        f'<button type="submit">{escape(button)}</button>\n'
        "</form>",
    )


def confirmed(task: dict[str, Any], r: Reader) -> HTMLResponse:
    t = r.t
    done, close = t.gettext("We have recorded that the request has been carried out."), t.gettext(_CLOSE)
    return _page(r, t.gettext("Thank you: confirmation recorded"),
                 f'<p class="ok">{escape(done)}</p>\n{_details(task, r)}\n<p>{escape(close)}</p>')


def upload_form(task: dict[str, Any], r: Reader, problem: UploadRefused | None = None) -> HTMLResponse:
    """The form a processor sends its export with (or says it holds nothing)."""
    t = r.t
    limits = limits_of(task)
    try:
        refuse_if_closed(task, limits)
    except UploadRefused as closed:
        return refused(task, r, closed)
    alert = f'<p class="problem" role="alert">{escape(problem.said(t))}</p>\n' if problem else ""
    export, send, note = t.gettext("Your export"), t.gettext("Send the export"), t.gettext("Note (optional)")
    nothing = t.gettext("We hold no personal data about this person")
    return _page(
        r, t.gettext("Send your export for a data-subject request"),
        f"{alert}<p>" + escape(t.gettext(
            "We asked you by e-mail for a copy of the personal data you hold about a data subject on our behalf. "
            "Please send it here: the files go to the data subject with the rest of their data, so send it in a "
            "form they can read.")) + "</p>\n"
        f"{_details(task, r)}\n"
        '<form method="post" enctype="multipart/form-data">\n'
        f'<label for="files">{escape(export)}</label>\n'
        '<p class="hint" id="files-hint">' + escape(t.gettext(
            "JSON, CSV, PDF or plain-text files, or a ZIP archive of them; at most %(file_mb)d MB a file and "
            "%(total_mb)d MB in all. Web pages, programs and other kinds of file are refused.") % {
            "file_mb": limits.max_file_mb, "total_mb": limits.max_total_mb}) + "</p>\n"
        f'<input type="file" id="files" name="{FILE_FIELD}" multiple accept="{escape(accepted_types(limits))}" '
        'aria-describedby="files-hint">\n'
        '<label><input type="checkbox" name="no_data" value="1"> '
        f'{escape(nothing)}</label>\n'
        f'<label for="note">{escape(note)}</label>\n'
        '<p class="hint" id="note-hint">' + escape(t.gettext(
            "For example, what the files contain, or what you could not include and why.")) + "</p>\n"
        f'<textarea id="note" name="note" rows="4" maxlength="{NOTE_MAX}" aria-describedby="note-hint"></textarea>\n'
        f'<button type="submit">{escape(send)}</button>\n'
        "</form>",
        status=problem.status if problem else 200,
    )


# The title of a refusal without one of its own, by its status.
_REFUSED_TITLES = {409: N_("Already answered"), 403: N_("Link expired")}
_REFUSED = N_("Upload refused")
_CLOSE = N_("You can close this page.")


def refused(task: dict[str, Any], r: Reader, refusal: UploadRefused) -> HTMLResponse:
    t = r.t
    title = refusal.title(t) if refusal.title else t.gettext(_REFUSED_TITLES.get(refusal.status, _REFUSED))
    return _page(r, title, f'<p class="problem" role="alert">{escape(refusal.said(t))}</p>\n{_details(task, r)}',
                 status=refusal.status)


def export_received(task: dict[str, Any], r: Reader, names: list[str]) -> HTMLResponse:
    """The answer to an export kept: the files' names, or that the processor holds nothing."""
    t = r.t
    sent = (t.ngettext("We have received %(count)d file: %(names)s.", "We have received %(count)d files: %(names)s.",
                       len(names)) % {"count": len(names), "names": ", ".join(names)}
            if names else t.gettext("We have recorded that you hold no personal data about this person."))
    return _page(r, t.gettext("Thank you: export received"),
                 f'<p class="ok">{escape(sent)}</p>\n{_details(task, r)}\n<p>{escape(t.gettext(_CLOSE))}</p>')
