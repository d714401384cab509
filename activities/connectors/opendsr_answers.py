"""Reading what an OpenDSR processor sends back, as it arrives: the JSON document of an answer,
refused naming the system, the call and what was wrong when it is not the document asked for.

OpenDSR's documents are JSON. The specification's examples send `application/json`, but it
requires no media type (and leaves the results' transport open), so what a processor labels
`text/plain`, or not at all, is read for what it holds. What is no JSON (an error page), JSON
nested past any document's depth (refused before a recursive parser sees it: bounded_http), a
list where an object goes, or an answer about a job that does not name it, was a RecursionError,
JSONDecodeError, AttributeError or KeyError naming nothing, or for results a list read as "the
processor holds nothing". Now it is OpenDsrMalformed: retried as a failing processor is (one being
deployed answers so for a while), and its message is what staff read when retries run out.
"""

from __future__ import annotations

from typing import Any

import httpx

from activities.connectors.base import PermanentConnectorError
from activities.connectors.bounded_http import NotJson, json_document, json_object
from activities.connectors.opendsr_documents import shown_path


class OpenDsrUnavailable(Exception):
    """The processor is unreachable, throttling (429) or failing (5xx): retrying may help."""


class OpenDsrMalformed(OpenDsrUnavailable):
    """The processor answered what is not the document OpenDSR asks for; the message names the
    system, the call (its method and path) and what was wrong."""


def malformed(system: str, response: httpx.Response, call: str, what: str) -> OpenDsrMalformed:
    path = shown_path(str(response.request.url))
    return OpenDsrMalformed(f"system {system}: the processor's answer to {call} "
                            f"({response.request.method} {path}) {what}")


def json_answer(system: str, response: httpx.Response, call: str) -> Any:
    """The answer's JSON document, whatever it holds (None for an empty body)."""
    try:
        return json_document(response, labelled=False)
    except NotJson as exc:
        raise malformed(system, response, call, str(exc)) from None


def object_answer(system: str, response: httpx.Response, call: str) -> dict[str, Any]:
    """The answer's JSON object."""
    try:
        return json_object(response, labelled=False)
    except NotJson as exc:
        raise malformed(system, response, call, str(exc)) from None


def job_answer(system: str, response: httpx.Response, call: str, job_id: str) -> dict[str, Any]:
    """An answer about one job (a new request's acknowledgement, its status): an object naming it.
    Another job's id is no slip to wait out: the processor mixes its jobs up, and staff must look
    at once (PermanentConnectorError)."""
    document = object_answer(system, response, call)
    said = document.get("subject_request_id")
    if said is None:
        raise malformed(system, response, call, "has no subject_request_id")
    if said != job_id:
        raise PermanentConnectorError(f"system {system}: the processor's answer to {call} is about a different "
                                      "request id")
    return document


def results_answer(system: str, response: httpx.Response) -> dict[str, Any]:
    """An access request's results: an object with its `datasets` (an empty list when the
    processor holds nothing). One without them says nothing of what the processor holds, and read
    as nothing held, the subject's package would tell them so."""
    document = object_answer(system, response, "the results request")
    if "datasets" not in document:
        raise malformed(system, response, "the results request", "has no datasets")
    return document
