"""Who did something, as people know them: the request page, its notes and the evidence pack name
staff the same way."""

from __future__ import annotations

from collections.abc import Mapping


def actor_name(actor: str, names: Mapping[str, str]) -> str:
    """Who did it, as people know them: a member of staff by their token's label
    (dsrflow/stores/team_store.py `staff_names`) and the role they acted with, else the actor as
    recorded (`workflow`, `subject`). The role comes from the audit event, not the label: a label
    is free words ("compliance officer Jane" on an agent's token), and alone it let an agent's
    acts read as compliance's."""
    name = names.get(actor)
    if name is None:
        return actor
    role = actor.partition(":")[0]
    return name if name.startswith(f"{role} ") else f"{name} ({role})"
