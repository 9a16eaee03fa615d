"""The Composite resource (``POST V/composite``): up to 25 subrequests in one API request.

What the REST API Developer Guide documents ("Send Multiple Requests Using Composite",
"Composite Request Body", "Composite Subrequest Result", "allOrNone Parameters in Composite and
Collections Requests"; developer.salesforce.com/docs/platform/api-rest/guide/
resources-composite-composite-post.html), and how the sandbox follows it:

- "The entire series of requests counts as a single call toward your API limits" (unlike
  ``composite/batch``, where each subrequest counts): the app admits, counts, logs and
  fault-injects the POST once; its subrequests go straight to the route handlers here, so each
  answers exactly as the same request sent alone would, past the quota and the request log;
- "up to 25 subrequests in a single call. Up to 5 of these subrequests can be sObject
  Collections or query operations, including Query and QueryAll requests": more is a 400 for
  the whole request (the error text is ours: none is documented or recorded);
- the answer is 200 with one ``{body, httpHeaders, httpStatusCode, referenceId}`` per
  subrequest, in order; a failed subrequest shows its own status and error array;
- ``allOrNone`` false: "the remaining subrequests that don't depend on the failed subrequest
  are executed" (a dependent one, which refers to it with ``@{referenceId.field}``, answers
  400 ``PROCESSING_HALTED``); true: the first failure stops the request, every write is rolled
  back and each other subrequest answers 400 ``PROCESSING_HALTED`` with the recorded text
  (``camel-composite-response-failure.json``); a Collections subrequest with a failed record
  counts as a failure, its own answer kept (the guide's case 4, recorded as
  ``doc-composite-allornone-duplicates-processing-halted.json``);
- subrequests "inherit" Accept, Authorization and Content-Type: setting one is a 400 for the
  whole request; a referenceId holds only letters, digits and underscores and starts with a
  letter or digit (API 52.0 and later: otherwise the whole request fails); the url starts with
  ``/services/data/vXX.X/``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import Response

from sandbox.http import Call, MalformedJson, Route, json_response
from sandbox.salesforce.org import Org

MAX_SUBREQUESTS = 25
MAX_QUERY_OPERATIONS = 5
METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")  # case-sensitive, as documented
INHERITED_HEADERS = ("accept", "authorization", "content-type")
ANSWER_HEADERS = ("Location", "ETag", "Last-Modified")  # no Content-Length, as documented
# Composite supports sObject resources, Query, QueryAll and sObject Collections; the query
# operations (and Collections) are the ones the five-subrequest cap counts.
QUERY_OPERATIONS = ("salesforce.query", "salesforce.queryAll", "salesforce.collections.")
SUPPORTED = (*QUERY_OPERATIONS, "salesforce.sobject", "salesforce.describe",
             "salesforce.getUpdated", "salesforce.getDeleted")
HALTED = ("The transaction was rolled back since another operation in the same transaction "
          "failed.")
_REFERENCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*")
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")
_VERSIONED = re.compile(r"/services/data/v\d+\.\d+/")


@dataclass(frozen=True)
class Subrequest:
    method: str
    url: str
    reference_id: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """An error status, or a Collections answer with a refused record."""
        return self.status >= 400 or (isinstance(self.body, list) and any(
            isinstance(item, dict) and item.get("success") is False for item in self.body))

    def wire(self, reference_id: str) -> dict[str, Any]:
        return {"body": self.body, "httpHeaders": self.headers,
                "httpStatusCode": self.status, "referenceId": reference_id}


class Unresolved(Exception):
    """A ``@{...}`` reference to a subrequest that failed, did not run, or lacks the value."""


def refused(status: int, code: str, message: str) -> Answer:
    return Answer(status, [{"errorCode": code, "message": message}])


def _whole(code: str, message: str) -> Response:
    """A refusal of the whole Composite request: nothing ran."""
    return json_response([{"errorCode": code, "message": message}], 400)


def parse_request(body: Any) -> tuple[bool, list[Subrequest]] | Response:
    """The ``allOrNone`` flag and the subrequests, or the whole request's 400."""
    items = body.get("compositeRequest") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return _whole("JSON_PARSER_ERROR", "compositeRequest must be a list of at least one "
                      "subrequest")
    if len(items) > MAX_SUBREQUESTS:
        return _whole("LIMIT_EXCEEDED", f"A composite request takes at most {MAX_SUBREQUESTS} "
                      f"subrequests; this one has {len(items)}")
    out: list[Subrequest] = []
    for item in items:
        problem = _subrequest_problem(item, {s.reference_id for s in out})
        if problem is not None:
            return _whole(*problem)
        out.append(Subrequest(item["method"], item["url"], item["referenceId"],
                              item.get("body"), dict(item.get("httpHeaders") or {})))
    return bool(body.get("allOrNone", False)), out


def _subrequest_problem(item: Any, seen: set[str]) -> tuple[str, str] | None:
    if not isinstance(item, dict):
        return "JSON_PARSER_ERROR", "each subrequest must be an object"
    reference = item.get("referenceId")
    if not isinstance(reference, str) or not _REFERENCE_ID.fullmatch(reference):
        return "INVALID_API_INPUT", (f"referenceId {reference!r} must start with a letter or a "
                                     "number and hold only letters, numbers and underscores")
    if reference in seen:
        return "INVALID_API_INPUT", f"Duplicate referenceId {reference!r}"
    if item.get("method") not in METHODS:
        return "INVALID_API_INPUT", (f"{reference}: method must be one of "
                                     f"{', '.join(METHODS)}")
    url = item.get("url")
    if not isinstance(url, str) or not _VERSIONED.match(url):
        return "INVALID_API_INPUT", f"{reference}: the url must start with /services/data/vXX.X/"
    headers = item.get("httpHeaders") or {}
    if not isinstance(headers, dict):
        return "JSON_PARSER_ERROR", f"{reference}: httpHeaders must be an object"
    inherited = sorted(h for h in headers if str(h).lower() in INHERITED_HEADERS)
    if inherited:
        return "INVALID_API_INPUT", (f"{reference}: {', '.join(inherited)} cannot be set on a "
                                     "subrequest: subrequests inherit them")
    return None


def resolve(value: Any, answers: dict[str, Answer]) -> Any:
    """``value`` with every ``@{referenceId.path}`` replaced by that subrequest's value: a
    string that is one reference takes the value itself, others take its text."""
    if isinstance(value, dict):
        return {k: resolve(v, answers) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, answers) for v in value]
    if not isinstance(value, str) or "@{" not in value:
        return value
    whole = _REFERENCE.fullmatch(value)
    if whole is not None:
        return _lookup(whole, answers)
    return _REFERENCE.sub(lambda m: str(_lookup(m, answers)), value)


def _lookup(match: re.Match[str], answers: dict[str, Answer]) -> Any:
    name, path = match.group(1), match.group(2)
    answer = answers.get(name)
    if answer is None or answer.failed:
        raise Unresolved(f"Invalid reference specified. No value for {name}{path} found in "
                         f"{name}: that subrequest did not succeed")
    value = answer.body
    for step in _STEP.finditer(path):
        key, index = step.group(1), step.group(2)
        if key is not None and isinstance(value, dict) and key in value:
            value = value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            raise Unresolved(f"Invalid reference specified. No value for {name}{path} found "
                             f"in {name}")
    return value


class Composite:
    """Runs a Composite request's subrequests through the emulator's own route handlers."""

    def __init__(self, org: Org, routes: list[Route]) -> None:
        self.org = org
        self._routes = [(r, r.compile()) for r in routes if r.endpoint.startswith(SUPPORTED)]

    def handle(self, call: Call) -> Response:
        parsed = parse_request(call.json())
        if isinstance(parsed, Response):
            return parsed
        all_or_none, subrequests = parsed
        queries = sum(1 for s in subrequests if self._endpoint(s).startswith(QUERY_OPERATIONS))
        if queries > MAX_QUERY_OPERATIONS:
            return _whole("LIMIT_EXCEEDED", f"A composite request takes at most "
                          f"{MAX_QUERY_OPERATIONS} query or sObject Collections subrequests; "
                          f"this one has {queries}")
        with self.org.lock:  # one transaction: no other request runs in between
            answers = (self._all_or_none(call, subrequests) if all_or_none
                       else self._each(call, subrequests))
        return json_response({"compositeResponse": [
            answers[s.reference_id].wire(s.reference_id) for s in subrequests]})

    def _each(self, call: Call, subrequests: list[Subrequest]) -> dict[str, Answer]:
        answers: dict[str, Answer] = {}
        for sub in subrequests:
            answers[sub.reference_id] = self._run(call, sub, answers)
        return answers

    def _all_or_none(self, call: Call, subrequests: list[Subrequest]) -> dict[str, Answer]:
        writes = any(s.method != "GET" for s in subrequests)
        before = self.org.snapshot() if writes else None
        answers: dict[str, Answer] = {}
        for sub in subrequests:
            answer = self._run(call, sub, answers)
            answers[sub.reference_id] = answer
            if answer.failed:
                if before is not None:
                    self.org.restore(before)
                halted = refused(400, "PROCESSING_HALTED", HALTED)
                return {s.reference_id: answers[s.reference_id] if s is sub else halted
                        for s in subrequests}
        return answers

    def _endpoint(self, sub: Subrequest) -> str:
        route, _ = self._match(sub.method, sub.url.split("?", 1)[0])
        return route.endpoint if route is not None else ""

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route, regex in self._routes:
            found = regex.match(path)
            if found is not None and route.method == method:
                return route, found.groupdict()
        return None, {}

    def _run(self, parent: Call, sub: Subrequest, answers: dict[str, Answer]) -> Answer:
        try:
            url, body = resolve(sub.url, answers), resolve(sub.body, answers)
        except Unresolved as exc:
            return refused(400, "PROCESSING_HALTED", str(exc))
        path, _, query = str(url).partition("?")
        route, params = self._match(sub.method, path)
        if route is None:
            return refused(404, "NOT_FOUND", "The requested resource does not exist")
        headers = {k.lower(): v for k, v in parent.headers.items()}
        headers.update({k.lower(): str(v) for k, v in sub.headers.items()})
        child = Call(method=sub.method, path=path, params=params,
                     query=parse_qs(query, keep_blank_values=True), headers=headers,
                     body=b"" if body is None else json.dumps(body).encode(),
                     endpoint=route.endpoint, context=dict(parent.context))
        try:
            response = route.handler(child)
        except MalformedJson as exc:
            return refused(400, "JSON_PARSER_ERROR", str(exc))
        assert isinstance(response, Response), "Salesforce handlers answer synchronously"
        content = bytes(response.body)
        return Answer(response.status_code, json.loads(content) if content else None,
                      {k: response.headers[k] for k in ANSWER_HEADERS if k in response.headers})
