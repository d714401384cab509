"""The same address on more than one HubSpot contact: HubSpot keeps a contact's primary address
unique, so the subject's address is on a second contact only as a secondary one
(hs_additional_emails: a contact merged into another keeps its address there). Every such contact is
exported and erased, and none that merely shares the address's tokens (HubSpot's CONTAINS_TOKEN
matches ada@example.com in ada@example.com.au). In-process, against the HubSpot stand-in."""

from __future__ import annotations

import pytest

from policy.model import DEFAULT_POLICY
from tests.saas_support import collect, connector, http_policy, hubspot_served, subject
from tests.yaml_files import read_yaml


@pytest.mark.parametrize("blocklist", [False, True])
async def test_a_contact_holding_the_address_as_a_secondary_one_is_exported_and_erased(
        pool, monkeypatch, tmp_path, blocklist):
    """Ada's own contact, one merged into another that keeps her address among its secondary ones,
    one whose secondary address only shares its tokens, and another person's. Access exports her
    two, each with its notes; erasure deletes those two, counted once each and both in the erasure
    ledger, also when deleting by address (which reaches only the primary): the other is deleted by
    id. Before, the search asked for the primary address alone: the merged contact was neither
    exported nor erased, and the erasure said HubSpot held nothing more of her."""
    async with hubspot_served(monkeypatch, tmp_path) as (app, _, _url):
        data = app.state.data
        own = data.add_contact("ada@example.com", "Ada", "Lovelace")
        merged = data.add_contact("a.lovelace@work.example", "Ada", "Lovelace",
                                  hs_additional_emails="a.king@home.example;Ada@Example.com")
        lookalike = data.add_contact("ada.byron@example.org", "Ada", "Byron", hs_additional_emails="ada@example.com.au")
        other = data.add_contact("grace@example.com", "Grace", "Hopper")
        hers = {data.add_note(own, "demo call"), data.add_note(merged, "renewal")}
        data.add_note(lookalike, "another person's")
        config = read_yaml(DEFAULT_POLICY.parent / "http/hubspot.yaml")
        config["limits"]["per_second"] = 50  # (three searches in all: under HubSpot's five a second)
        config["vars"]["blocklist_email"] = blocklist
        loaded = http_policy(tmp_path, {"crm_hubspot": {"label": "HubSpot CRM", "connector": "http", "config": config}})
        system = connector(loaded, "crm_hubspot", pool)
        try:
            records = await collect(system, subject("ada@example.com"))
            outcome = await system.erase(subject("ada@example.com"))
        finally:
            await system.close()
    assert sorted(r.fields["id"] for r in records if r.dataset == "contacts") == sorted([own, merged])
    assert {r.fields["id"] for r in records if r.dataset == "notes"} == hers
    assert outcome.status == "done"
    assert outcome.datasets["contacts"] == {"found": 2, "deleted": 2}
    assert sorted(key for key, _ in outcome.erased["contacts"]) == sorted([own, merged])
    assert set(data.contacts) == {lookalike, other}
