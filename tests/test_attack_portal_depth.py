"""Attacks on the subject portal and the public endpoints that the other attack tests do not
make (tests/test_attack_*.py, tests/test_hostile_forms.py, tests/test_portal.py): an anonymous
caller with a reference seen on a letter or a processor's page, and an address to try with it.
The real app, PostgreSQL and Temporal (docs/security.md, "The subject's side, in depth")."""

from __future__ import annotations

import re

from dsrflow.domain.references import short_reference
from tests.ratelimit_support import app_clients, stored_for, unique_ip
from tests.support import stored_request, unique_email


def _page_words(page: str) -> str:
    """A page's text as a stranger compares two of them: the form's fresh submission id aside."""
    return re.sub(r'name="submission" value="[^"]*"', "", page)


async def test_the_complaint_form_does_not_tell_whose_request_a_reference_is(settings, pool, dev_server, task_queue):
    """The complaint form, sent with its reasons left empty, answered the reference's owner's
    address without a word on the reference and any other address "We have no request ... of
    yours": a stranger holding a reference (from a letter, a processor's confirmation page) found
    who made it, with nothing stored and no e-mail to the subject. Now the reference is judged
    only once the rest of the form is right, and every address reads the same page."""
    owner = unique_email("complaint-owner")
    rid = await stored_request(pool, settings, "complaint-owner", email=owner)
    async with app_clients(settings, dev_server.client, task_queue) as call_from:
        stranger = call_from(unique_ip())
        pages = []
        for email in (owner, unique_email("complaint-guess")):
            r = await stranger.post("/portal/complaints", data={
                "about": short_reference(rid), "email": email, "complaint_reasons": ""})
            assert r.status_code == 422, r.text
            pages.append(_page_words(r.text).replace(email, "EMAIL"))
        assert pages[0] == pages[1]
        assert "Tell us what your complaint is about" in pages[1]
        # A complaint whose form is right otherwise still hears that the reference is wrong.
        r = await stranger.post("/portal/complaints", data={
            "about": short_reference(rid), "email": unique_email("complaint-guess"), "complaint_reasons": "Why?"})
        assert r.status_code == 422 and "We have no request" in r.text
    assert await stored_for(pool, owner) == 1
