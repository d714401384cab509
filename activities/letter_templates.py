"""Letters to data subjects (and alerts to staff), rendered from Jinja2 templates.

Each purpose has three templates under ``activities/templates/letters/``:
``{purpose}.subject.j2`` (one line), ``{purpose}.txt.j2`` and ``{purpose}.html.j2``. Shared pieces
live in ``_base.txt.j2`` / ``_base.html.j2``, ``_footer.txt.j2`` and ``_macros.{txt,html}.j2``.

Rendering is strict: a context key a template needs but the caller did not pass raises
``jinja2.exceptions.UndefinedError`` (never a blank in a letter). HTML is autoescaped; text and
subject lines are not (they are not HTML). This module is pure (no I/O besides reading the
templates) so activities, the api and tests can all call it.

Times: a datetime in a letter is written in the context's ``timezone`` (which every letter and
staff alert needs: the controller's, from the policy version the request runs under), with the
zone named ("31 December 2026, 00:30 CET (UTC+1)"), and a datetime printed as a date is the date
it fell on there. Dates computed as dates (deadlines) are printed as they are.

Personal data: ``staff_alert`` goes to the controller's staff and never contains the subject's
name or e-mail: it is rendered without ``subject`` in its context at all.

A staff alert's detail is said from its `facts` (activities/staff_alert_words.py) in the staff
language, its systems named by the policy's labels (`systems`, id to label); an alert an older
workflow asked for carries its detail as an English sentence instead (`detail`).

Words of the law: a subject's letter says what the law of its request (`request.regime`) says,
"personal information" under the CCPA and PIPEDA where the GDPR's letters say "personal data"
(dsrflow/i18n `worded`); its environment is that wording's. A processor's e-mail names the parties
as that law does ("consumer" and "service provider or contractor" under the CCPA); staff alerts
keep the language's usual words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

from jinja2 import BytecodeCache, Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.bccache import Bucket
from jinja2.exceptions import UndefinedError
from jinja2.runtime import Undefined

from activities.citations import ACCESS_PERIOD_ONLY, APPEAL_PROVISIONS, PERIODS, answer_period, cite, law_grants
from activities.letter_outcome import kept_where
from activities.letter_systems import placed
from activities.staff_alert_words import DETAIL_CHARS, FACTS, action_label, named, quoted, step_label
from dsrflow.domain.deadlines import answer_days, takes_complaints
from dsrflow.domain.references import short_reference
from dsrflow.i18n import N_, SOURCE_LANGUAGE, Translator, and_list, long_date, long_datetime, series, worded, wording_of
from policy.model import Policy
from schemas.plain_text import one_line
from schemas.requests import DenialReason
from schemas.vocabulary import PURPOSES, SUBJECT_PURPOSES, Language, staff_alert_kinds

__all__ = [
    "PROCESSOR_PURPOSES",
    "REQUIRED_CONTEXT",
    "RenderedLetter",
    "render_letter",
    "letter_wording",
    "longdate",
    "longdatetime",
]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates" / "letters"

# `timezone`: the controller's (the request's policy version's `defaults.timezone`), which the
# letter's times are written in.
_COMMON = ("controller", "request", "subject", "portal_url", "timezone")

#: The e-mails to a processor asked by e-mail (activities/processor_mail.py): its request, reminders,
#: and the withdrawal of the request once it closed unanswered before the processor confirmed.
PROCESSOR_PURPOSES: tuple[str, str, str] = ("processor_request", "processor_reminder", "processor_withdrawal")

#: Top-level context keys each purpose needs (nested keys are checked by StrictUndefined).
REQUIRED_CONTEXT: dict[str, tuple[str, ...]] = {
    "acknowledgement": (*_COMMON, "verification_required"),
    "verification": (*_COMMON, "code", "link", "expires_at", "max_attempts"),
    "reminder": (*_COMMON, "code", "link", "expires_at", "max_attempts"),
    # `found`, `unread`, `asked`: what our own systems told at once (activities/letter_confirmation.py).
    "simplified_confirmation": (*_COMMON, "found", "unread", "asked"),
    "extension": (*_COMMON, "reason", "new_due_date"),
    # `stage`: "verification", "review" or "compliance" (workflows/complaint_progress.py); `late`:
    # the date we aimed at has passed; `complaint`: the Commissioner; `next_date`: when we write next.
    "complaint_progress": (*_COMMON, "stage", "late", "complaint", "next_date"),
    "response": (*_COMMON, "outcome"),
    # `acted_in`, `asked_in`: the systems the request had already changed when it was closed, and
    # those asked and still at work (either may be empty).
    "denial": (*_COMMON, "reason_code", "reason_label", "explanation", "remedies", "acted_in", "asked_in"),
    "closed_unverified": (*_COMMON, "expired_at", "remedies"),
    # `remedies` too, unless the subject withdrew the request (checked in render_letter).
    "cancellation": (*_COMMON, "reason", "withdrawn", "acted_in", "asked_in"),
    "restriction_lift": (*_COMMON, "reason", "lift_on", "notice_days", "restriction"),
    # And `facts` (with `systems`, the policy's labels, and `where`, its systems after a verb), or an
    # older workflow's `detail`.
    "staff_alert": ("controller", "request", "timezone", "kind", "days_left"),
}

# The policy's default warning days, for a context that does not name its own.
DEFAULT_WARNING_DAYS: tuple[int, ...] = Policy.model_fields["deadline_warnings_days"].default

@dataclass(frozen=True)
class RenderedLetter:
    subject: str
    text: str
    html: str


def _fail_if_undefined(value: Any) -> None:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # raises UndefinedError naming the missing key


def longdate(value: date | datetime, language: str = SOURCE_LANGUAGE, timezone: str | None = None) -> str:
    """The date as the language writes it in full: "2 March 2026", "2 maart 2026"; a datetime's
    date in `timezone`."""
    _fail_if_undefined(value)
    return long_date(value, language, timezone)


def longdatetime(value: datetime, language: str, timezone: str) -> str:
    """"31 December 2026, 00:30 CET (UTC+1)": the moment in `timezone`, the date in the language."""
    _fail_if_undefined(value)
    return long_datetime(value, language, timezone)


# A context that names no timezone (a test's, a caller's that has none) reads its datetimes in UTC;
# letters, staff alerts and processor e-mails each pass the controller's.
_UNNAMED_TIMEZONE = "UTC"


def shortid(value: Any) -> str:
    """The request's short reference (dsrflow/domain/references.py): what the subject reads and
    types into the portal; the full id works there too."""
    _fail_if_undefined(value)
    return short_reference(str(value))


# PIPEDA sets the extension in s. 8(4), not in s. 8(3) with the period (activities/citations.py).
# Translators: the Act's own citation, as its official version in the language cites it (French:
# "LPRPDE, par. 8(4)"); the English form where the Act has no version in it.
_EXTENSION_PROVISIONS = {"pipeda": N_("PIPEDA, s. 8(4)")}


def extension_rule(regime: str, appeal: bool, t: Translator, request_type: str | None = None) -> str | None:
    """The extension notice's account of the law that allows it, where the law counts in days (the
    US state laws, PIPEDA): the law by name, the further days of its one extension and where it
    says so; an appeal's under the CPA (C.R.S. § 6-1-1306(3)(b)). Under PIPEDA, whose s. 8(4)
    extends an access request's period, a request of another kind is told we apply that rule to it
    (as its acknowledgement says of the period: activities/citations.py `answer_period`), and so is
    a request a US state law does not grant (`law_grants`: a restriction, an objection). None for
    the regimes the template words itself (the GDPR's, the UK GDPR's Art. 12(3))."""
    if regime not in PERIODS:
        return None
    law, provision = PERIODS[regime]
    if appeal:
        provision = APPEAL_PROVISIONS[regime]
        said = t.gettext("Under %(law)s, we may extend the period for deciding on your appeal once, by up to "
                         "%(days)d further days, in the cases the law sets out (%(provision)s).")
    elif regime in ACCESS_PERIOD_ONLY and request_type != "access":
        provision = _EXTENSION_PROVISIONS.get(regime, provision)
        said = t.gettext("Under %(law)s, the period for answering a request for access to personal data, which we "
                         "apply to every request, may be extended once, by up to %(days)d further days, in the "
                         "cases the law sets out (%(provision)s).")
    elif not law_grants(regime, request_type):
        provision = _EXTENSION_PROVISIONS.get(regime, provision)
        said = t.gettext("Under %(law)s, the period for answering a request to exercise one of the rights it grants, "
                         "which we apply to every request, may be extended once, by up to %(days)d further days, in "
                         "the cases the law sets out (%(provision)s).")
    else:
        provision = _EXTENSION_PROVISIONS.get(regime, provision)
        said = t.gettext("Under %(law)s, we may extend the period for answering your request once, by up to "
                         "%(days)d further days, in the cases the law sets out (%(provision)s).")
    # The US codes' citations are the same in every language and in no catalog: gettext leaves them.
    return said % {"law": t.gettext(law), "days": answer_days(regime, appeal=appeal)[1],
                   "provision": t.gettext(provision)}


class _CompiledOnce(BytecodeCache):
    """Each template's compiled code, shared by every letter environment: they differ only in what
    the code looks up when it runs (the catalog, the filters' language and time zone), never in how a
    template compiles. Without it each environment compiled every template again (7 ms each): a
    worker writing in four languages and three zones compiled 732 times what is 61 templates."""

    def __init__(self) -> None:
        self._code: dict[str, tuple[str | None, Any]] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        checksum, code = self._code.get(bucket.key, (None, None))
        if code is not None and checksum == bucket.checksum:
            bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = (bucket.checksum, bucket.code)


_COMPILED = _CompiledOnce()


@cache
def letter_environment(language: str, timezone: str, wording: str | None = None) -> Environment:
    """The templates, speaking `language` in the `wording` of a law (dsrflow/i18n `worded`; None:
    the language's usual words): `_()`, `ngettext()`, `{% trans %}` and the filters' and globals'
    sentences read its catalog, dates are written its way, times in `timezone` (the filters are the
    environment's, so the imported macros write them alike: an imported template does not see
    the letter's context). Paragraphs in `{% trans %}` are trimmed, so the catalogs hold one line
    per message however the template wraps it."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        extensions=["jinja2.ext.i18n"],
        # The templates ship with the code: no stat() of every template file on every letter.
        auto_reload=False,
        bytecode_cache=_COMPILED,
    )
    env.policies["ext.i18n.trimmed"] = True
    t = worded(language, wording)
    env.install_gettext_translations(t, newstyle=True)  # type: ignore[attr-defined]  # added by the i18n extension
    env.filters["longdate"] = partial(longdate, language=language, timezone=timezone)
    env.filters["longdatetime"] = partial(longdatetime, language=language, timezone=timezone)
    env.filters["shortid"] = shortid
    # `request.regime | cite("19", " (%s)")`: " (Art. 19 GDPR)", or "" where the GDPR is not the law.
    env.filters["cite"] = partial(cite, t=t)
    env.filters["and_list"] = partial(and_list, language=language)
    env.filters["series"] = partial(series, language=language)
    # A staff alert's detail (_staff_alert_detail.txt.j2): steps, actions and systems in words.
    env.filters["step_label"] = partial(step_label, t=t)
    env.filters["step_of"] = lambda step: step_label(step["step"], step.get("about"), t=t)
    env.filters["action_label"] = partial(action_label, t=t)
    env.filters["named"] = named
    # Systems after a verb ("The task at our survey service provider"), from the context's `where`.
    env.filters["placed"] = partial(placed, t=t, language=language)
    # The period the law of a request (or an appeal) gives to answer it, where it counts in days.
    env.globals["answer_period"] = partial(answer_period, t=t)
    env.globals["extension_rule"] = partial(extension_rule, t=t)
    # Whether a request referring to a refused one is a complaint to us (UK GDPR, DPA 2018 s. 164A)
    # rather than an appeal: the words the subject reads for it.
    env.globals["complaint_to_us"] = takes_complaints
    env.globals["language"] = language
    # Who holds what a response letter lists as kept: what it says was done with it.
    env.globals["kept_where"] = kept_where
    return env


_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")
_LINE_BREAKS = re.compile(r"[ \t]*\n[ \t\n]*")


def _tidy_text(text: str) -> str:
    text = _TRAILING_SPACE.sub("", text.replace("\r\n", "\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip("\n") + "\n"


def _one_line(text: str) -> str:
    # Collapses every whitespace run (including CR/LF, which would be header injection) and any
    # other control character to a space.
    return " ".join(one_line(text).split())


def render_template_set(name: str, ctx: dict[str, Any], language: str, wording: str | None = None) -> RenderedLetter:
    """The subject line, text and HTML of the templates `name`.*.j2, in `language` (worded as
    `wording` words it) and the context's `timezone`; the subject line (one line, never empty) is
    in the context of the other two as `letter_subject`."""
    env = letter_environment(Language(language), str(ctx.get("timezone") or _UNNAMED_TIMEZONE), wording)
    subject = _one_line(env.get_template(f"{name}.subject.j2").render(ctx))
    if not subject:
        raise ValueError(f"letter {name!r}: empty subject line")
    ctx = {**ctx, "letter_subject": subject}
    text = _tidy_text(env.get_template(f"{name}.txt.j2").render(ctx))
    html = env.get_template(f"{name}.html.j2").render(ctx).strip() + "\n"
    return RenderedLetter(subject=subject, text=text, html=html)


_OTHERS_WORDS = ("message", "failed")


def staff_alert_detail(ctx: dict[str, Any], language: str, subject: Mapping[str, Any] | None = None) -> str:
    """The detail of a staff alert, one paragraph in `language`: said from its `facts`, or the
    sentence an older workflow passed; what others wrote in it without `subject`'s identity."""
    facts = ctx.get("facts")
    if facts is None:
        if "detail" not in ctx:
            raise UndefinedError("letter 'staff_alert': missing context key(s): facts (or detail)")
        return quoted(str(ctx["detail"]), subject, DETAIL_CHARS)
    if facts.get("what") not in FACTS:
        raise ValueError(f"staff_alert: unknown facts {facts.get('what')!r}")
    # Facts that hold others' words, quoted as they came (but the subject's identity and their
    # length), without a full stop of their own (the sentence quoting them has one): a processor's
    # or the relay's `message`, and the error a call-off or a lift `failed` with (a processor that
    # echoes the subject's address went whole into the alert).
    facts = {**facts, **{key: quoted(facts[key], subject).strip().rstrip(".")
                         for key in _OTHERS_WORDS if isinstance(facts.get(key), str)}}
    env = letter_environment(Language(language), str(ctx["timezone"]))
    sentences = env.get_template("_staff_alert_detail.txt.j2").render({**ctx, "facts": facts,
                                                                       "systems": ctx.get("systems") or {},
                                                                       "where": ctx.get("where") or {}})
    return _LINE_BREAKS.sub(" ", sentences).strip()  # one paragraph, keeping French no-break spaces


def render_letter(purpose: str, context: Mapping[str, Any], language: str = SOURCE_LANGUAGE) -> RenderedLetter:
    """Render the subject line, plain text and HTML of the letter for ``purpose``, in ``language``.

    Raises ``ValueError`` for an unknown purpose (or an unknown ``reason_code`` / ``kind``) and
    ``jinja2.exceptions.UndefinedError`` when a needed context key is missing.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown letter purpose {purpose!r}; expected one of {', '.join(PURPOSES)}")

    missing = [key for key in REQUIRED_CONTEXT[purpose] if key not in context]
    if missing:
        raise UndefinedError(f"letter {purpose!r}: missing context key(s): {', '.join(missing)}")

    # Names and free text (a reason, an explanation) are checked at intake; folded to one line
    # here as well, so nothing stored by another path forges a line of a letter or a header.
    ctx: dict[str, Any] = {k: one_line(v) if isinstance(v, str) else v for k, v in context.items()}
    if isinstance(ctx.get("subject"), Mapping) and isinstance(ctx["subject"].get("name"), str):
        ctx["subject"] = {**ctx["subject"], "name": one_line(ctx["subject"]["name"])}
    if purpose == "staff_alert":
        # Staff alerts never carry the subject's identity: drop it so that any reference fails,
        # and any address a relay's or a processor's words put in the detail (cut to a paragraph).
        subject = ctx.pop("subject", None)
        ctx["detail"] = staff_alert_detail(ctx, language, subject if isinstance(subject, Mapping) else None)
        if ctx["kind"] not in staff_alert_kinds(ctx.get("warning_days", DEFAULT_WARNING_DAYS)):
            raise ValueError(f"staff_alert: unknown kind {ctx['kind']!r}")
    if purpose == "cancellation" and not ctx["withdrawn"] and "remedies" not in ctx:
        raise UndefinedError("letter 'cancellation': a cancellation by staff refuses the request: "
                             "missing context key(s): remedies")
    if purpose == "denial" and ctx["reason_code"] not in tuple(DenialReason):
        raise ValueError(f"denial: unknown reason_code {ctx['reason_code']!r}")

    return render_template_set(purpose, ctx, language, letter_wording(purpose, ctx["request"]["regime"]))


def letter_wording(purpose: str, regime: str) -> str | None:
    """The wording of a letter of `purpose` (dsrflow/i18n `worded`): a subject's letter in the words
    of the law of their request, a processor's e-mail in the words that law names the parties with,
    a staff alert in the language's usual ones. The templates and the sentences written into them
    (activities/letter_context.py `build_context`, activities/processor_mail.py `asked_of_processor`) both
    ask here, so the two cannot word one letter apart."""
    if purpose in PROCESSOR_PURPOSES:
        return wording_of(regime, to_processor=True)
    return wording_of(regime) if purpose in SUBJECT_PURPOSES else None
