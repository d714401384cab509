"""A request sent from the subject portal (issue 16), over the real app, worker, PostgreSQL and
Temporal dev server: stored in the language of the page it was sent from, and written to in it;
the browser's language when nothing was chosen; a language we do not write in refused naming the
field; and only the languages the policy writes in offered or accepted. The assertions hold
whatever the translators' words. The portal's pages in each language:
tests/test_portal_languages.py, whose helpers these tests use.
"""

from __future__ import annotations

import re

import pytest

from tests.support import api_client, staff_headers, unique_email, verification_code, wait_for_letter
from tests.test_portal_languages import form_language, page_language, submit
from tests.yaml_files import dump_yaml, read_yaml

# -- the request in the page's language ------------------------------------------------------------


async def test_a_request_from_the_french_portal_is_written_to_in_french(http, pool, mail_sink):
    rid = await submit(http, "fr", type="access", email=unique_email("fr"))
    assert await pool.fetchval("SELECT language FROM dsr_requests WHERE id = $1", rid) == "fr"
    view = await http.get(f"/v1/requests/{rid}", headers=await staff_headers(pool, "agent"))
    assert view.json()["language"] == "fr"
    letter = await wait_for_letter(mail_sink, rid, "verification")
    assert letter["Content-Language"] == "fr"

    page = await http.get(f"/portal/requests/{rid}/verify")  # the cookie: French
    assert page_language(page.text) == "fr"
    code = verification_code(letter)
    wrong = await http.post(f"/portal/requests/{rid}/verify", data={"code": "000000" if code != "000000" else "1" * 6})
    assert wrong.status_code == 400 and page_language(wrong.text) == "fr"
    # The page answering the post offers its languages as links to the page (not to the post).
    assert f'<a href="/portal/requests/{rid}/verify?lang=nl"' in wrong.text


async def test_a_request_without_a_choice_takes_the_browsers_language(http, pool):
    http.headers["Accept-Language"] = "de-DE,de;q=0.9"
    rid = await submit(http, type="access", email=unique_email("de"))
    assert await pool.fetchval("SELECT language FROM dsr_requests WHERE id = $1", rid) == "de"


@pytest.mark.parametrize("forged", ["it", "EN", "", "x" * 300, '"><b>nl'])
async def test_a_forged_language_is_refused_naming_the_field(http, pool, forged):
    email = unique_email("forged")
    page = await http.get("/portal", params={"lang": "nl"})
    submission = re.search(r'name="submission" value="([^"]+)"', page.text).group(1)
    r = await http.post("/portal/requests", data={"submission": submission, "type": "access", "email": email,
                                                   "language": forged})
    if forged == "":
        # No language at all is the policy's default, as for the API.
        assert r.status_code == 303
        rid = r.headers["location"].split("/")[3]
        assert await pool.fetchval("SELECT language FROM dsr_requests WHERE id = $1", rid) == "en"
        return
    assert r.status_code == 422
    assert '<a href="#language">' in r.text and 'id="language-error"' in r.text and 'id="language"' in r.text
    assert page_language(r.text) == "nl" and form_language(r.text) == "nl"  # the page's, not the forged one
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0


@pytest.fixture
async def dutch_first(settings, lifecycle_policy, dev_server, task_queue, tmp_path):
    """The app under a policy that writes in Dutch (its default) and English only."""
    content = read_yaml(lifecycle_policy)
    content["languages"] = {"supported": ["nl", "en"], "default": "nl", "staff": "en"}
    content["translations"] = {"nl": content["translations"]["nl"]}
    path = tmp_path / "dutch-first.yaml"
    path.write_text(dump_yaml(content, sort_keys=False))  # its translation: the shipped file
    async with api_client(settings.model_copy(update={"policy_path": path}), dev_server.client, task_queue) as http:
        yield http


async def test_the_policy_says_which_languages_the_portal_offers(dutch_first, pool):
    r = await dutch_first.get("/portal", headers={"Accept-Language": "fr, de;q=0.9"})
    assert page_language(r.text) == "nl"  # the policy's default
    assert re.findall(r'hreflang="(\w+)"', r.text) == ["en"] and "Français" not in r.text
    r = await dutch_first.get("/portal", params={"lang": "fr"})
    assert page_language(r.text) == "nl" and "set-cookie" not in r.headers
    # A language the app knows but this controller does not write in: the policy refuses it.
    email = unique_email("unsupported")
    r = await dutch_first.post("/portal/requests", data={"type": "access", "email": email, "language": "fr"})
    assert r.status_code == 422 and 'id="language-error"' in r.text
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0
