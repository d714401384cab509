"""Why a processor's link takes no answer: its task answered already, settled by other means, its
request closed or the link expired (api/callbacks/link_answers.py `refuse_if_closed`), or its
upload refused. In the words of the catalogs (`Said`), said on the link's page in the staff
language and the words of the request's law (api/callbacks/processor_pages.py)."""

from __future__ import annotations

from api.callbacks.export_files import Said
from dsrflow.i18n import ENGLISH


class UploadRefused(Exception):
    """What the link's page answers instead of taking the answer: `said` (`message` in English)
    with an HTTP `status`, under a `title` of its own where the status's does not fit."""

    def __init__(self, status: int, said: Said, title: Said | None = None) -> None:
        self.said = said
        self.message = said(ENGLISH)
        super().__init__(self.message)
        self.status = status
        self.title = title


def answered_already(received: str = "") -> UploadRefused:
    """More files for a task already answered: refused (409), saying what we have where known
    (`received`, said in the page's words already)."""
    return UploadRefused(409, lambda t: " ".join(filter(None, (
        t.gettext("This request has already been answered: no more files can be added."),
        received, t.gettext("If something is missing, reply to our e-mail.")))))


def settled_otherwise(said: Said) -> UploadRefused:
    """A link whose task has its answer by other means (staff resolved it): 409, "Already settled"."""
    return UploadRefused(409, said, title=lambda t: t.gettext("Already settled"))
