"""The language of a page (api/pages.py renders them): the console's is the controller's working
language; a subject's page (the portal, the public API's pages for a browser) is in the one the
subject chose with `?lang=`, remembered in a cookie, else the browser's `Accept-Language` among the
policy's supported languages, else the policy's default."""

from __future__ import annotations

from fastapi import Request, Response

from api.csrf import cookie_secure
from api.deps import app_state
from dsrflow.i18n import Translator, translations
from policy.languages import Languages

# The subject's choice of language, for the portal's pages (not HttpOnly: it is no secret).
LANGUAGE_COOKIE = "dsrflow_lang"
LANGUAGE_QUERY = "lang"
# Every path: the subject's pages are the portal's and the public API's (a letter's package link
# under /v1/public/ read in the browser's language, not the one chosen on the portal); staff pages
# never read it.
_LANGUAGE_COOKIE_PATH = "/"
_LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 3600
# The pages subjects read: the portal, and the public API's answers shown to a browser.
_SUBJECT_PREFIXES = ("/portal/", "/v1/public/")


def is_subject_page(request: Request) -> bool:
    path = request.url.path
    return path == "/portal" or path.startswith(_SUBJECT_PREFIXES)


def accepted_language(header: str | None, supported: list[str]) -> str | None:
    """The supported language an `Accept-Language` header prefers: its ranges by quality (the
    order they are written in breaking ties), each matched on its primary subtag ("nl-BE" is
    Dutch); None when it names none of them (or only `*`)."""
    ranges: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "").split(",")):
        tag, *parameters = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranges.append((-quality, index, tag.lower()))
    for _, _, tag in sorted(ranges):
        primary = tag.split("-", 1)[0]
        if primary in supported:
            return primary
    return None


def chosen_language(request: Request, languages: Languages) -> str | None:
    """The language chosen with `?lang=` on this request, if the controller writes in it (any
    other value is ignored, never an error)."""
    chosen = request.query_params.get(LANGUAGE_QUERY, "").strip().lower()
    return chosen if chosen in {lang.value for lang in languages.supported} else None


def subject_language(request: Request, languages: Languages) -> str:
    """The language of a subject's page: chosen now (`?lang=`), chosen before (the cookie), the
    browser's (`Accept-Language`), else the controller's default."""
    supported = [lang.value for lang in languages.supported]
    remembered = request.cookies.get(LANGUAGE_COOKIE, "")
    return (chosen_language(request, languages) or (remembered if remembered in supported else None)
            or accepted_language(request.headers.get("accept-language"), supported) or languages.default.value)


def page_language(request: Request) -> str:
    """The language this request's page is written in (see the module's docstring)."""
    language = getattr(request.state, "page_language", None)
    if language is None:
        languages = app_state(request).policy.policy.languages
        language = subject_language(request, languages) if is_subject_page(request) else languages.staff.value
        request.state.page_language = language
    return str(language)


def page_translator(request: Request) -> Translator:
    """The catalog of the page's language, for messages a route words in Python:
    `page_translator(request).gettext(N_("..."))`."""
    return translations(page_language(request))


def remember_choice(request: Request, response: Response) -> None:
    """A language chosen on a subject's page (`?lang=`), remembered for the portal's next pages."""
    if is_subject_page(request):
        state = app_state(request)
        if chosen := chosen_language(request, state.policy.policy.languages):
            response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=_LANGUAGE_COOKIE_MAX_AGE, path=_LANGUAGE_COOKIE_PATH,
                                samesite="lax", secure=cookie_secure(request, state.settings))
