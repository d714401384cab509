"""Who did something, as people know them: the request page, its notes and the evidence pack name
staff the same way."""

from __future__ import annotations

from collections.abc import Mapping

# Actors recorded under another name for the same automatic hand: the call-off of a closed
# request's jobs (activities/connectors/opendsr_calloff.py, run by the system task's workflow)
# records its events as "system", which the timeline printed as "by system", a word that reads as
# one of the request's systems. Shown as the workflow, whose acts they are; stored as recorded.
_SHOWN_AS = {"system": "workflow"}


def actor_name(actor: str, names: Mapping[str, str], systems: Mapping[str, str] | None = None) -> str:
    """Who did it, as people know them: a member of staff by their token's label
    (dsrflow/stores/team_store.py `staff_names`) and the role they acted with, a processor by its
    system's label where `systems` names them, else the actor as recorded (`workflow`, `subject`).
    The role comes from the audit event, not the label: a label is free words ("compliance officer
    Jane" on an agent's token), and alone it let an agent's acts read as compliance's."""
    name = names.get(actor)
    if name is None:
        kind, _, system = str(actor).partition(":")
        if kind == "processor" and systems is not None:
            # A processor's own signed word (api/callbacks/opendsr.py): by the system's label, where
            # the timeline read `processor:email_marketing`.
            return f"{systems.get(system, system)} (processor)"
        # As recorded, or as the workflow (`_SHOWN_AS`); the pages pass one not recorded (None)
        # through as well.
        return _SHOWN_AS.get(actor, actor) if isinstance(actor, str) else actor
    role = actor.partition(":")[0]
    return name if name.startswith(f"{role} ") else f"{name} ({role})"
