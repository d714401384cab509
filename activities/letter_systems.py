"""How a letter names a system after a verb: "Our automated work in our CRM stopped", "your data at
our survey service provider", "in unserem CRM und bei unserem Anbieter von Umfragediensten". A
label after a bare preposition read wrong ("in Survey service provider", "dans Prestataire de
services d'enquêtes", "in Abrechnung (...)"): the policy gives each system its own phrase,
preposition included, per language (`systems.<name>.where`); a system without one is named by a
phrase of ours around its label, which reads right in every language if not as well."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dsrflow.i18n import N_, SOURCE_LANGUAGE, Translator, and_list
from policy.model import Policy

# The label in quotes, as a name: a label is a noun phrase of its own ("Survey service provider"),
# which no article or preposition of ours can be fitted to in every language.
_OUR_SYSTEM = N_("in our system “%(system)s”")
# A processor we reach by e-mail holds the data, not a system of ours.
_OUR_PROVIDER = N_("at our service provider “%(system)s”")


def system_where(policy: Policy, system: str, t: Translator) -> str:
    """`system` after a verb in `t`'s language (`policy` is the policy in that language): its
    `where`, else our phrase around its label (its id, for a system this policy version lacks)."""
    if where := policy.system_where(system):
        return where
    spec = policy.systems.get(system)
    message = _OUR_PROVIDER if spec is not None and spec.connector == "manual_email" else _OUR_SYSTEM
    return t.gettext(message) % {"system": policy.system_label(system)}


def systems_where(policy: Policy, systems: Iterable[str], t: Translator, language: str) -> str:
    """Several systems after one verb, each with its own phrase: "in our CRM and at our survey
    service provider" ("in unserem CRM und bei unserem Anbieter von Umfragediensten")."""
    return and_list([system_where(policy, s, t) for s in systems], language)


def all_where(policy: Policy, t: Translator) -> dict[str, str]:
    """Every system of `policy` -> its phrase: what a staff alert's detail names them by (`placed`)."""
    return {system: system_where(policy, system, t) for system in policy.systems}


def placed(ids: Iterable[str], where: Mapping[str, str], labels: Mapping[str, str],
           t: Translator, language: str = SOURCE_LANGUAGE) -> str:
    """Systems by id after a verb, from a letter's context (`where`, `all_where`; `labels`, the
    policy's labels): a system neither names (an id a later policy version dropped) by our
    phrase around what it is known by."""
    return and_list([where.get(s) or t.gettext(_OUR_SYSTEM) % {"system": labels.get(s, s)} for s in ids], language)
