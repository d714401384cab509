"""The shipped policy loads and says what the privacy policy says; mistakes name file and path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from devstack.policy_copies import without_processors_by_email
from policy.model import DEFAULT_POLICY, PolicyError, load_policy, parse_policy
from tests.letters_as_sent import as_sent
from tests.support import english_only
from tests.yaml_files import dump_yaml, read_yaml

RAW = read_yaml(DEFAULT_POLICY)


def write(tmp_path: Path, content: dict | str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(content if isinstance(content, str) else dump_yaml(content, sort_keys=False))
    return path


def test_shipped_policy_loads() -> None:
    loaded = load_policy()
    policy = loaded.policy
    assert len(loaded.version) == 64
    assert set(policy.categories) == {
        "account", "website_functionality", "payments", "communications", "demo_access", "logs",
        "cookies_analytics", "marketing",
    }
    assert {"access", "rectification", "erasure", "restriction", "objection", "portability"} <= set(policy.rights)
    assert len(policy.recipients) == 8 and "google_analytics" in policy.recipients
    assert all(r.safeguards and "SCC" in r.safeguards for r in policy.recipients.values())
    assert {n: s.connector for n, s in policy.systems.items()} == {
        "crm": "sql", "analytics": "sql", "billing": "sql", "email_marketing": "opendsr",
        "surveys": "manual_email", "work_management": "manual_email",
        "registration_authorization": "manual_email", "monitoring_marketing": "manual_email",
    }
    assert all(s.recipient in policy.recipients for s in policy.systems.values())
    # Every recipient is reached by a system's task (Art. 19), but the host of those systems.
    unreached = set(policy.recipients) - {s.recipient for s in policy.systems.values()}
    assert unreached == {"cloud_hosting"} and policy.recipients["cloud_hosting"].hosts_our_systems
    assert policy.systems["email_marketing"].datasets == []
    # Placeholders stay in the policy (and its version hash); connectors expand them.
    assert policy.systems["email_marketing"].config["base_url"].startswith("${DSRFLOW_DEMO_OPENDSR_URL:-")


def test_shipped_policy_encodes_the_privacy_policy() -> None:
    categories = load_policy().policy.categories
    assert "12 months after your last user session" in categories["account"].retention
    assert "24 months" in categories["cookies_analytics"].retention
    assert "12 months" in categories["logs"].retention
    assert any(basis.article == "6(1)(c)" for basis in categories["payments"].legal_bases)
    assert any(basis.article == "6(1)(a)" for basis in categories["marketing"].legal_bases)
    assert "payment service provider" in categories["payments"].source


def test_every_field_states_category_origin_and_erase_rule() -> None:
    for name, system in RAW["systems"].items():
        for dataset in system.get("datasets", []):
            for column, rule in dataset["fields"].items():
                missing = {"category", "erase"} - set(rule)
                if "origin" not in dataset:
                    missing |= {"origin"} - set(rule)
                assert not missing, f"systems.{name}.datasets.{dataset['name']}.fields.{column}: {missing}"


def test_contacts_carry_out_marketing_and_profiling_objections() -> None:
    contacts = next(d for d in load_policy().policy.systems["crm"].datasets if d.name == "contacts")
    assert contacts.objection_updates == {
        "direct_marketing": {"marketing_opt_in": False},
        "profiling": {"profiling_opt_out": True, "engagement_segment": None},
    }


def test_accounting_records_are_kept_7_years_before_2023_and_10_from_2023() -> None:
    """Law of 20 November 2022: the 10-year period applies to documents of 2023 and later."""
    policy = load_policy().policy
    statute = policy.statutory_holds["be_accounting"]
    assert [statute.years_for(year) for year in (2015, 2022, 2023, 2030)] == [7, 7, 10, 10]
    mandates = next(d for d in policy.systems["billing"].datasets if d.name == "mandates")
    assert mandates.hold is not None and mandates.hold.date_column == ["signed_on", "last_collection_on"]


def _assert_refused(tmp_path: Path, change, message: str) -> None:
    """The shipped policy, changed by `change`, fails to load with `message`."""
    content = copy.deepcopy(RAW)
    change(content)
    with pytest.raises(PolicyError, match=message):
        load_policy(write(tmp_path, content))


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["statutory_holds"]["be_accounting"]["later_periods"].append(
        {"from_year": 2020, "years": 8, "law": "x"}), r"statutory_holds\.be_accounting\.later_periods: .*from_year must strictly increase"),
    (lambda c: c["systems"]["billing"]["datasets"][3]["hold"].update(date_column=["signed_on", "collected"]),
     r"systems\.billing\.datasets\.mandates\.hold\.date_column: unknown column 'collected'"),
    # A law that is no legal obligation under a regime is named in its letters (tests/test_letter_foreign_law.py).
    (lambda c: c["statutory_holds"]["be_accounting"].pop("foreign_law"),
     r"statutory_holds\.be_accounting: .*foreign_law: needed, since obligation_under leaves out a regime"),
    (lambda c: c["statutory_holds"]["be_accounting"].update(obligation_under=["gdpr", "uk_gdpr"]),
     r"statutory_holds\.be_accounting: .*foreign_law: only for a law that obligation_under leaves out"),
    (lambda c: c["statutory_holds"]["be_accounting"].update(obligation_under=["gdpr", "ccpa"]),
     r"statutory_holds\.be_accounting\.obligation_under\.1: Input should be 'gdpr' or 'uk_gdpr'"),
])
def test_bad_statutory_hold_settings_name_their_path(tmp_path: Path, change, message: str) -> None:
    _assert_refused(tmp_path, change, message)


@pytest.mark.parametrize(("zone", "message"), [
    ("Europe/Amsterdm", r"defaults\.timezone: Value error, unknown timezone 'Europe/Amsterdm'"),
    ("UTC+1", r"defaults\.timezone: Value error, unknown timezone 'UTC\+1'"),
    ("../../etc/passwd", r"defaults\.timezone: Value error, unknown timezone"),
    ("localtime", r"defaults\.timezone: Value error, 'localtime' is the machine's zone"),
])
def test_a_timezone_that_is_no_zone_is_refused_at_load(tmp_path: Path, zone: str, message: str) -> None:
    """A misspelt timezone loaded, and every request under it then failed in its deadlines, its
    letters and its portal pages (each a ZoneInfoNotFoundError naming nothing of the policy)."""
    _assert_refused(tmp_path, lambda c: c.setdefault("defaults", {}).update(timezone=zone), message)


def test_unknown_category_names_file_and_field(tmp_path: Path) -> None:
    content = copy.deepcopy(RAW)
    content["systems"]["crm"]["datasets"][0]["fields"]["phone"]["category"] = "hobbies"
    path = write(tmp_path, content)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert str(path) in message
    assert "systems.crm.datasets.contacts.fields.phone" in message and "hobbies" in message


def test_bad_connector_kind_names_its_path(tmp_path: Path) -> None:
    content = copy.deepcopy(RAW)
    content["systems"]["x"] = {"label": "X", "connector": "ftp"}
    with pytest.raises(PolicyError, match=r"systems\.x\.connector"):
        load_policy(write(tmp_path, content))


def test_bad_erase_rule_names_its_path(tmp_path: Path) -> None:
    content = copy.deepcopy(RAW)
    content["systems"]["billing"]["datasets"][0]["fields"]["email"]["erase"] = "shred"
    with pytest.raises(PolicyError, match=r"systems\.billing\.datasets\.0\.fields\.email\.erase"):
        load_policy(write(tmp_path, content))


def test_unknown_recipient_is_named(tmp_path: Path) -> None:
    content = copy.deepcopy(RAW)
    content["systems"]["crm"]["recipient"] = "nobody"
    with pytest.raises(PolicyError, match=r"systems\.crm\.recipient: unknown recipient 'nobody'"):
        load_policy(write(tmp_path, content))


@pytest.mark.parametrize("change", [
    lambda c: c["systems"].pop("registration_authorization"),
    lambda c: c["recipients"]["cloud_hosting"].pop("hosts_our_systems"),
])
def test_a_recipient_no_erasure_would_reach_is_refused(tmp_path: Path, change) -> None:
    """Art. 19: a recipient named in the policy but by no system would never be told of an
    erasure; the policy says which, and how to reach it."""
    content = copy.deepcopy(RAW)
    change(content)
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, content))
    assert "no system names it as its recipient" in str(caught.value)
    assert "connector manual_email" in str(caught.value) and "hosts_our_systems: true" in str(caught.value)
    assert "recipients.registration_authorization" in str(caught.value) or "recipients.cloud_hosting" in str(caught.value)


def test_a_version_stored_before_the_rule_still_loads_for_its_requests() -> None:
    """A request keeps the policy version it started under (policy_versions): one stored before
    every recipient had to be reached (its registration provider reached by no system) still
    parses for it; only the file in force is refused."""
    content = copy.deepcopy(RAW)
    content["systems"].pop("registration_authorization")
    content["recipients"]["cloud_hosting"].pop("hosts_our_systems")
    stored = parse_policy(content, "a stored version")
    assert "registration_authorization" in stored.policy.recipients


def test_processors_by_email_leave_an_unattended_copy_with_their_recipients(tmp_path: Path) -> None:
    """The test stacks' and benchmarks' copy: without the processors that wait for a person, and
    without the recipients only they reached, it still loads."""
    content = without_processors_by_email(copy.deepcopy(RAW), keep=("surveys",))
    policy = load_policy(write(tmp_path, content)).policy
    assert {n for n, s in policy.systems.items() if s.connector == "manual_email"} == {"surveys"}
    assert "work_management" not in policy.recipients and "surveys" in policy.recipients
    assert "communication_crm" in policy.recipients and "cloud_hosting" in policy.recipients


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "controller: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML") as caught:
        load_policy(path)
    assert str(path) in str(caught.value)


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    content = copy.deepcopy(RAW)
    content["retention_rules"] = {}
    with pytest.raises(PolicyError, match="retention_rules"):
        load_policy(write(tmp_path, content))


def test_every_regime_has_its_remedies(tmp_path: Path) -> None:
    """A refusal under any regime names an authority: a policy that leaves one out fails to load."""
    policy = load_policy().policy
    assert policy.remedies_for("uk_gdpr", "GB").authority.name == "Information Commissioner's Office"
    assert policy.remedies_for("lgpd", "BR").authority.name.startswith("Autoridade Nacional")
    # A GDPR subject's own authority where the policy lists it, else the controller's.
    assert policy.remedies_for("gdpr", "FR").authority == policy.supervisory_authorities["BE"]
    content = copy.deepcopy(RAW)
    del content["remedies"]["lgpd"]
    with pytest.raises(PolicyError, match=r"remedies: no entry for regime\(s\) lgpd"):
        load_policy(write(tmp_path, content))


def _contacts(content: dict) -> dict:
    return content["systems"]["crm"]["datasets"][0]


@pytest.mark.parametrize(("change", "message"), [
    # A misspelt origin names the column and the values it may take.
    (lambda c: _contacts(c)["fields"]["notes"].update(origin="staff"),
     r"systems\.crm\.datasets\.0\.fields\.notes\.origin: Input should be 'provided', 'observed', 'derived' or 'inferred'"),
    (lambda c: _contacts(c).update(origin="typed"), r"systems\.crm\.datasets\.0\.origin: Input should be 'provided'"),
    # A column nobody marked: neither it nor its dataset says where it comes from.
    (lambda c: _contacts(c).pop("origin"),
     r"systems\.crm\.datasets\.0: .*fields\.email\.origin: dataset 'contacts' sets no origin"),
    (lambda c: c["systems"]["email_marketing"]["config"]["origins"].update(campaign_activity="seen"),
     r"systems\.email_marketing: .*config\.origins\.campaign_activity: 'seen' is not an origin"),
    # A profile is something we inferred: a profiling result marked as provided is a mistake.
    (lambda c: _contacts(c)["fields"]["engagement_segment"].update(origin="provided"),
     r"automated_decisions\.profiling\.columns: 'engagement_segment' is a profile's result, so its origin must be derived or inferred"),
    (lambda c: c["automated_decisions"]["profiling"].update(objection_column="no_profiling"),
     r"automated_decisions\.profiling: unknown column 'no_profiling'"),
])
def test_bad_origin_or_profiling_settings_name_their_column(tmp_path: Path, change, message: str) -> None:
    _assert_refused(tmp_path, change, message)


def test_shipped_policy_marks_observed_and_inferred_data() -> None:
    """WP242 rev.01: analytics events are observed (portable); the CRM's segment is inferred."""
    systems = load_policy().policy.systems
    events = next(d for d in systems["analytics"].datasets if d.name == "page_events")
    contacts = next(d for d in systems["crm"].datasets if d.name == "contacts")
    assert {events.origin_of(c) for c in events.fields} == {"observed"}
    assert contacts.origin_of("engagement_segment") == "inferred" and contacts.origin_of("email") == "provided"


def _billing(content: dict, dataset: str) -> dict:
    return next(d for d in content["systems"]["billing"]["datasets"] if d["name"] == dataset)["fields"]


@pytest.mark.parametrize(("column", "dataset", "rule", "message"), [
    # A key or a link column moves records to another subject: never, whatever the reason.
    ("customer_id", "invoices", {"category": "payments", "erase": "keep",
                                 "rectifiable": {"max_length": 20, "why": "the customer asked for it"}},
     "'customer_id' is the column linking rows to dataset 'customers'; it can never be rectified"),
    ("id", "customers", {"category": "account", "erase": "keep", "origin": "derived",
                         "rectifiable": {"max_length": 20, "why": "the customer asked for it"}},
     "'id' is the dataset's key; it can never be rectified"),
    # An identity or a held column only with a reason.
    ("customer_number", "customers", None, "'customer_number' is an identity column; declare it rectifiable only with `why`"),
    ("total", "invoices", None, "'total' is kept under a statutory hold; declare it rectifiable only with `why`"),
])
def test_rectifiable_key_identity_and_held_columns_are_refused_at_load(tmp_path: Path, column, dataset, rule,
                                                                       message) -> None:
    content = copy.deepcopy(RAW)
    fields = _billing(content, dataset)
    fields[column] = rule or {**fields[column], "rectifiable": {"max_length": 20}}
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, content))
    assert f"fields.{column}.rectifiable" in str(caught.value) and message in str(caught.value)


def test_shipped_policy_lets_no_amount_key_or_login_be_rectified() -> None:
    policy = load_policy().policy
    rectifiable = {f"{s}.{d.name}.{c}" for s, system in policy.systems.items() for d in system.datasets
                   for c, rule in d.fields.items() if rule.rectifiable}
    assert rectifiable == {"crm.contacts.first_name", "crm.contacts.last_name", "crm.contacts.phone",
                           "billing.customers.name", "billing.customers.company", "billing.customers.street",
                           "billing.customers.postcode", "billing.customers.city", "billing.customers.phone"}
    assert policy.approval_required("erasure", attested_by_staff=True)
    assert not policy.approval_required("erasure", attested_by_staff=False)
    assert policy.approval_required("rectification", attested_by_staff=False)


_NL_AUTHORITY = {"name": "Autoriteit Persoonsgegevens", "address": "Postbus 93374, 2509 AJ Den Haag, Netherlands",
                 "website": "https://autoriteitpersoonsgegevens.nl"}


async def test_a_subject_told_of_their_own_authority_is_not_told_it_is_ours(tmp_path: Path) -> None:
    """A DPO who lists the Dutch authority: a Dutch subject's refusal names it as the authority of
    where they live, not as "the supervisory authority competent for us", which stays the Belgian
    one's introduction; a policy that lists another country's authority without the text to
    introduce it fails to load."""
    content = english_only(copy.deepcopy(RAW))
    content["supervisory_authorities"]["NL"] = _NL_AUTHORITY
    loaded = load_policy(write(tmp_path, content))
    denial = {"reason_code": "excessive", "explanation": "Fifth identical request."}
    dutch = " ".join((await as_sent("denial", "access", denial, loaded=loaded, country="NL")).text.split())
    assert "The supervisory authority of the Member State where you live is: Autoriteit Persoonsgegevens" in dutch
    assert "competent for us" not in dutch and "Drukpersstraat" not in dutch
    belgian = " ".join((await as_sent("denial", "access", denial, loaded=loaded, country="BE")).text.split())
    assert "The supervisory authority competent for us is: Autorité de protection des données" in belgian

    del content["remedies"]["gdpr"]["complaint_where_you_live"]
    with pytest.raises(PolicyError, match=r"remedies\.gdpr\.complaint_where_you_live: needed, since "
                                          r"supervisory_authorities names NL besides BE"):
        load_policy(write(tmp_path, content))


@pytest.mark.parametrize(("language", "where_you_live", "ours"), [
    ("nl", "De toezichthoudende autoriteit van de lidstaat waar u woont, is: Autoriteit Persoonsgegevens",
     "Gegevensbeschermingsautoriteit"),
    ("fr", "L'autorité de contrôle de l'État membre où vous résidez est : Autoriteit Persoonsgegevens",
     "Autorité de protection des données"),
    ("de", "Die Aufsichtsbehörde des Mitgliedstaats, in dem Sie wohnen, ist: Autoriteit Persoonsgegevens",
     "Datenschutzbehörde"),
])
async def test_the_authority_where_the_subject_lives_is_told_in_their_language(tmp_path: Path, language: str,
                                                                                where_you_live: str, ours: str) -> None:
    """The same Dutch subject's refusal, in each language the policy ships: that language's
    `complaint_where_you_live` introduces their own authority, and the Belgian one, competent for
    us, is not named in its place."""
    content = copy.deepcopy(RAW)
    content["supervisory_authorities"]["NL"] = _NL_AUTHORITY
    for entry in content["translations"].values():  # the shipped translations, with the Dutch authority
        translated = read_yaml(DEFAULT_POLICY.parent / entry["file"])
        translated["supervisory_authorities"]["NL"] = {"name": _NL_AUTHORITY["name"],
                                                       "address": _NL_AUTHORITY["address"]}
        (tmp_path / entry["file"]).write_text(dump_yaml(translated, allow_unicode=True, sort_keys=False))
    loaded = load_policy(write(tmp_path, content))
    denial = {"reason_code": "excessive", "explanation": "Fifth identical request."}
    letter = " ".join((await as_sent("denial", "access", denial, loaded=loaded, country="NL",
                                     language=language)).text.split())
    assert where_you_live in letter, letter
    assert ours not in letter
