"""A request's id spelt any way a UUID may be (upper case, no dashes, braces, a URN) names the
same request on every route, staff's as the subject's (api/request_ids.py). Before, a staff
route read the row through some spellings and answered 500 to others (`{...}`, `urn:uuid:`),
and echoed an upper-case id back as the request's."""

from __future__ import annotations

from tests.support import console_sign_in, staff_headers, unique_email
from tests.test_portal import submit


def spellings(rid: str) -> list[str]:
    bare = rid.replace("-", "")
    return [rid.upper(), "{" + rid + "}", bare, bare.upper(), f"urn:uuid:{rid}"]


STAFF_READS = ["/v1/requests/{}", "/v1/requests/{}/events", "/v1/requests/{}/evidence", "/v1/requests/{}/notes",
               "/v1/requests/{}/deferred-erasures", "/v1/requests/{}/package"]


async def test_every_spelling_of_a_request_id_reads_the_same_request_on_staffs_routes(http, pool):
    rid = await submit(http, type="access", email=unique_email("spelt"))
    headers = await staff_headers(pool, "admin")
    for path in STAFF_READS:
        canonical = await http.get(path.format(rid), headers=headers)
        for spelt in spellings(rid):
            answer = await http.get(path.format(spelt), headers=headers)
            assert answer.status_code == canonical.status_code, (path, spelt, answer.text)
    for spelt in spellings(rid):
        events = (await http.get(f"/v1/requests/{spelt}/events", headers=headers)).json()
        assert events["request_id"] == rid
        assert (await http.get(f"/v1/requests/{spelt}", headers=headers)).json()["id"] == rid
    # A write too: a note on the request under a braced id is the request's note.
    noted = await http.post("/v1/requests/{" + rid + "}/notes", headers=headers, json={"note": "called back"})
    assert noted.status_code == 201, noted.text
    notes = (await http.get(f"/v1/requests/{rid}/notes", headers=headers)).json()
    assert [n["body"] for n in notes] == ["called back"]


async def test_the_console_page_of_a_request_opens_under_any_spelling(http, pool):
    rid = await submit(http, type="access", email=unique_email("speltconsole"))
    await console_sign_in(http, pool, "agent")
    for spelt in spellings(rid):
        page = await http.get(f"/console/requests/{spelt}")
        assert page.status_code == 200, (spelt, page.text[:300])
        assert rid in page.text


async def test_what_is_no_uuid_is_still_no_request():
    from api.request_ids import canonical_id
    assert canonical_id("not-a-request") == "not-a-request"
    assert canonical_id("urn:uuid:3F2B8C1E-9A4D-4E6F-8B2A-1C5D7E9F0A12") == "3f2b8c1e-9a4d-4e6f-8b2a-1c5d7e9f0a12"
