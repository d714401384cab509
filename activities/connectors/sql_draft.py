"""`dsrflow policy draft`: a `sql` system for the policy, drafted from a live database for a person
to review.

From the catalog (activities/connectors/sql_introspect.py) it finds the tables that hold a
subject's identity (an e-mail address or customer number: by column name, or by a small sample of
values that look like one), makes each a dataset found by that identity, then follows foreign keys
from them: a table pointing at a drafted dataset becomes a dataset found `via` it, and so on.
Every column gets a suggested category and erasure rule. Every guess carries a `# review:` comment
saying what it rests on; what cannot be expressed in the policy (a composite key, a reference to
another schema, a name that is not a plain lower-case identifier) is said in a comment instead of
being written. Sampled values only feed pattern checks: none is printed or written.

The drafted system is validated against the policy's own model (policy/systems.py) before it is
written, so the fragment loads once pasted under `systems:`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import yaml

from activities.connectors.sql_introspect import Column, ForeignKey, Table, introspect, sample
from activities.connectors.sql_queries import TEXT_TYPES
from policy.strict import IDENT
from policy.systems import System

# The identities the policy matches subjects on (policy/systems.py `Dataset.identify`), and phone,
# which the draft points out but the policy does not match on.
_NAME_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"(^|_)e_?mail(_?addr(ess)?)?$|^mail(_?addr(ess)?)?$")),
    ("customer_id", re.compile(r"^(customer|client|cust|account|member|user)_?(id|no|nr|num|number|ref|code)$")),
    ("phone", re.compile(r"(^|_)(phone|mobile|tel|telephone|gsm|msisdn)(_?(no|nr|number))?$")),
]
_VALUE_RULES: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"),
    "phone": re.compile(r"^\+?[\d\s().-]{7,20}$"),
}
_LOOKS_LIKE = 0.8  # the share of sampled values that must fit a pattern
MATCHED_IDENTITIES = ("email", "customer_id")

# Suggested categories by column name, first match wins; the names follow the default policy's
# categories (policy/connexeon.yaml), so a reviewer replaces them with their own where they differ.
_CATEGORY_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("marketing", re.compile(r"marketing|newsletter|opt_?in|opt_?out|consent|campaign|segment|unsubscribe")),
    ("payments", re.compile(r"iban|bic|card|payment|invoice|amount|price|total|currency|vat|mandate|tax|bank")),
    ("communications", re.compile(r"message|body|subject|transcript|note|comment|chat|ticket|reply")),
    ("logs", re.compile(r"(^|_)(ip|ip_address|user_agent|device|session|referr?er|url|path)($|_)")),
    ("cookies_analytics", re.compile(r"cookie|client_id|page|event|visit|tracking")),
    ("account", re.compile(r"name|mail|phone|address|street|city|zip|postal|country|company|birth|gender|login")),
]
_OBSERVED = re.compile(r"(_at|_on|_date|_time)$|^(created|updated|last_seen|occurred)")


class DraftError(ValueError):
    """Nothing to draft: no table holds an identity."""


@dataclass
class _Dataset:
    table: Table
    key: str
    identify: dict[str, str] = field(default_factory=dict)
    via: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)  # review comments on the dataset
    fields: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)  # column -> (rule, comment)
    restricted: str | None = None


def _is_text(column: Column) -> bool:
    return column.type.split("(")[0] in TEXT_TYPES


def _plain(name: str) -> bool:
    return re.fullmatch(IDENT, name) is not None


async def _identity_guesses(conn: asyncpg.Connection, table: Table) -> dict[str, tuple[str, str]]:
    """column -> (identity kind, why), from the column's name or sampled values."""
    found: dict[str, tuple[str, str]] = {}
    links = {c for fk in table.foreign_keys for c in fk.columns}  # a link is followed, not matched on
    for column in table.columns:
        if column.name in links:
            continue
        by_name = next((kind for kind, rule in _NAME_RULES if rule.search(column.name.lower())), None)
        if by_name and (by_name == "customer_id" or _is_text(column)):
            found[column.name] = (by_name, "guessed from the column's name")
            continue
        if not _is_text(column) or not table.rows:
            continue
        values = await sample(conn, table, column.name)
        for kind, rule in _VALUE_RULES.items():
            if values and sum(bool(rule.match(v.strip())) for v in values) >= _LOOKS_LIKE * len(values):
                found[column.name] = (kind, f"sampled values look like {'e-mail addresses' if kind == 'email' else 'phone numbers'}")
                break
    return found


def _category(column: str, known: Collection[str] | None) -> tuple[str, str]:
    guess = next((c for c, rule in _CATEGORY_RULES if rule.search(column.lower())), None)
    why = "guessed from the column's name" if guess else "no clue in the column's name"
    guess = guess or "account"
    if known is not None and guess not in known:
        why += f"; {guess!r} is not a category of the policy in force"
    return guess, why


def _key(table: Table) -> tuple[str, str | None]:
    if len(table.primary_key) == 1:
        return table.primary_key[0], None
    if table.primary_key:
        return table.primary_key[0], (f"composite primary key ({', '.join(table.primary_key)}): the policy's key is "
                                      f"one column; use a unique column instead")
    fallback = "id" if table.column("id") else table.columns[0].name
    return fallback, f"no primary key: {fallback!r} assumed; it must identify a row"


def _fields(dataset: _Dataset, identities: dict[str, tuple[str, str]], known: Collection[str] | None) -> None:
    table = dataset.table
    links = {c for fk in table.foreign_keys for c in fk.columns}
    for column in table.columns:
        if column.name in (dataset.key,) or column.name in links or not _plain(column.name):
            continue
        if column.name == "restricted" and column.type == "boolean":
            dataset.restricted = column.name
            continue
        category, why = _category(column.name, known)
        rule: dict[str, Any] = {"category": category}
        kind = identities.get(column.name, (None, ""))[0]
        if _OBSERVED.search(column.name):
            rule["origin"] = "observed"
        if kind == "email" and _is_text(column):
            rule["erase"], erase_why = "hash", "hashed so erasure can be checked later"
        elif column.not_null:
            rule["erase"], erase_why = "keep", "NOT NULL: nulling it would fail; decide what erasure does"
        else:
            rule["erase"], erase_why = "null", "nulled on erasure"
        if kind in ("email", "customer_id"):
            rule["identity"] = kind
        note = f"review: category {why}; {erase_why}"
        if kind == "phone":
            note += "; looks like a phone number (the policy does not match subjects on it)"
        dataset.fields[column.name] = (rule, note)


def _reference(child: Table, parents: dict[str, _Dataset]) -> tuple[ForeignKey | None, list[str]]:
    """The foreign key of `child` to follow to a drafted dataset, and notes on those not followed."""
    chosen, notes = None, []
    for fk in child.foreign_keys:
        target = f"{fk.ref_schema}.{fk.ref_table}"
        if fk.ref_schema != child.schema:
            notes.append(f"foreign key {fk.name} points at {target}, in another schema: not followed")
        elif fk.ref_table == child.name:
            notes.append(f"foreign key {fk.name} ({', '.join(fk.columns)}) refers to this table itself: rows "
                         f"reached through it are not followed")
        elif fk.ref_table not in parents:
            continue
        elif len(fk.columns) > 1:
            notes.append(f"composite foreign key {fk.name} ({', '.join(fk.columns)}) to {fk.ref_table}: `via` "
                         f"takes one column; not followed")
        elif chosen is None:
            chosen = fk
        else:
            notes.append(f"also refers to {fk.ref_table} through {fk.columns[0]}; `via` follows one reference")
    return chosen, notes


async def draft_system(conn: asyncpg.Connection, system: str, *, schema: str = "public", database: str,
                       categories: Collection[str] | None = None) -> str:
    """The YAML fragment (`systems: {<system>: ...}`) for `schema` of the connected database."""
    tables = await introspect(conn, schema)
    drafted: dict[str, _Dataset] = {}
    skipped: list[str] = []
    identities: dict[str, dict[str, tuple[str, str]]] = {}
    for table in tables:
        if not _plain(table.name):
            skipped.append(f"{table.name!r}: not a plain lower-case name, which the sql connector requires "
                           f"(rename it, or add a view with a plain name)")
            continue
        identities[table.name] = await _identity_guesses(conn, table)
        matched = {c: g for c, g in identities[table.name].items() if g[0] in MATCHED_IDENTITIES and _plain(c)}
        if not matched:
            continue
        key, key_note = _key(table)
        if not _plain(key):
            skipped.append(f"{table.name}: its key column {key!r} is not a plain lower-case name")
            continue
        dataset = _Dataset(table=table, key=key, notes=[key_note] if key_note else [])
        for column, (kind, why) in matched.items():
            if kind in dataset.identify:
                dataset.notes.append(f"{column} also looks like a {kind}; only {dataset.identify[kind]} is used")
                continue
            dataset.identify[kind] = column
            dataset.notes.append(f"identify.{kind}: {column} ({why})")
        drafted[table.name] = dataset
    # Follow references from what is drafted until nothing more points at it (cycles end there).
    grew = True
    while grew:
        grew = False
        for table in tables:
            if table.name in drafted or table.name not in identities:
                continue
            fk, notes = _reference(table, drafted)
            key, key_note = _key(table)
            if fk is None or not (_plain(key) and _plain(fk.columns[0]) and _plain(fk.ref_columns[0])):
                continue
            parent = drafted[fk.ref_table]
            via = {"dataset": fk.ref_table, "column": fk.columns[0]}
            if fk.ref_columns[0] != parent.key:
                via["parent_column"] = fk.ref_columns[0]
            drafted[table.name] = _Dataset(table=table, key=key, via=via,
                                           notes=[n for n in (key_note, *notes) if n])
            grew = True
    for name, dataset in drafted.items():
        _fields(dataset, identities[name], categories)
        dataset.notes += _reference(dataset.table, drafted)[1] if dataset.via is None else []
    unreached = [t.name for t in tables if t.name not in drafted and _plain(t.name)]
    if not drafted:
        raise DraftError(f"no table of schema {schema!r} holds an e-mail address or customer number, so no "
                         f"dataset can be found from a subject's identity (tables: {', '.join(unreached) or 'none'})")
    content = _content(drafted, database)
    System.model_validate(content)  # what is written must load
    return _render(system, content, drafted, schema, unreached, skipped)


def _content(drafted: dict[str, _Dataset], database: str) -> dict[str, Any]:
    datasets = []
    for d in drafted.values():
        entry: dict[str, Any] = {"name": d.table.name, "table": d.table.name, "key": d.key}
        if d.identify:
            entry["identify"] = d.identify
        if d.via:
            entry["via"] = d.via
        entry["erasure"] = "delete"
        if d.restricted:
            entry["restricted_column"] = d.restricted
        entry["origin"] = "provided"
        entry["fields"] = {c: rule for c, (rule, _) in d.fields.items()}
        datasets.append(entry)
    return {"label": database, "connector": "sql", "config": {"database": database}, "datasets": datasets}


def _flow(value: Any) -> str:
    """One value on one line (a scalar loses the document-end marker PyYAML adds to it)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return text.removesuffix("\n...").strip()


def _render(system: str, content: dict[str, Any], drafted: dict[str, _Dataset], schema: str,
            unreached: list[str], skipped: list[str]) -> str:
    out = [
        f"# Drafted by `dsrflow policy draft` from schema {schema!r} of database {content['label']!r}.",
        "# Every guess is marked `review:`; check each, then paste the system under `systems:` in the",
        "# policy and run `dsrflow policy check`. Sampled values were only matched against patterns.",
    ]
    if schema != "public":
        out.append(f"# The sql connector finds tables on the database user's search_path: add {schema!r} to it.")
    out += ["systems:", f"  {_flow(system)}:",
            f"    label: {_flow(content['label'])}  # review: a name people recognise",
            "    connector: sql",
            f"    config: {_flow(content['config'])}  # review: or url: ${{SOME_VARIABLE}} for another server",
            "    datasets:"]
    for entry, dataset in zip(content["datasets"], drafted.values(), strict=True):
        rows = f"{'about ' if dataset.table.rows_estimated else ''}{dataset.table.rows} rows"
        out.append(f"      - name: {_flow(entry['name'])}  # {rows}")
        for note in dataset.notes:
            out.append(f"        # review: {note}")
        for key in ("table", "key", "identify", "via", "erasure", "restricted_column", "origin"):
            if key in entry:
                comment = {"erasure": "  # review: delete rows, or anonymise them",
                           "origin": "  # review: where the data comes from (per column below where known)",
                           "restricted_column": "  # review: set while a restriction is in force",
                           "via": "  # review: followed from a foreign key"}.get(key, "")
                out.append(f"        {key}: {_flow(entry[key])}{comment}")
        out.append("        fields:" if dataset.fields else "        fields: {}")
        for column, (rule, note) in dataset.fields.items():
            out.append(f"          {_flow(column)}: {_flow(rule)}  # {note}")
    if unreached:
        out.append("# review: not reached from any identity (no identity column, and no foreign key to a drafted")
        out.append(f"# table): {', '.join(unreached)}. Add them by hand if they hold personal data.")
    for note in skipped:
        out.append(f"# review: not drafted: {note}")
    return "\n".join(out) + "\n"
