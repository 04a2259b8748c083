"""The fake's HTTP plumbing: one ``responses`` callback routes every request to a service.

azure-ai-ml sends every call through azure-core's ``requests`` transport (and the harness reads
metrics through MLflow's RestStore, also ``requests``), so the fake answers at the HTTP level:
the real SDK builds the real requests, parses the real response shapes, runs its own pollers and
retry policy. Every request is logged (``requests``); one no route serves lands in ``unmatched``
and is answered 501, so a test that meets a request the fake does not know fails (``check``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses

Reply = tuple[int, dict[str, str], str]

ARM = "https://management.azure.com"


@dataclass
class Call:
    """One request the SDK sent, as the fake saw it."""

    method: str
    url: str
    route: str
    headers: dict[str, str]
    body: Any  # parsed JSON, raw bytes, or None
    raw: bytes = b""
    at: float = field(default_factory=time.monotonic)  # when the fake received it
    status: int = 0  # what the fake answered: status, headers, body text
    reply_headers: Mapping[str, str] = field(default_factory=dict)
    reply_body: str = ""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)


Handler = Callable[[Call, re.Match[str]], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    name: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, name: str, pattern: str, handler: Handler) -> Route:
    """``pattern`` is a regex of the URL up to its query string (``re.escape`` literal parts)."""
    return Route(method, name, re.compile(pattern + r"/?(?:\?.*)?$"), handler)


def json_reply(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body)


def error_reply(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Reply:
    """ARM's ErrorResponse (rest-api-specs common-types/resource-management types.json)."""
    return json_reply(status, {"error": {"code": code, "message": message}}, headers)


def _raw_body(body: Any) -> bytes:
    data = body.read() if hasattr(body, "read") else body
    return data.encode() if isinstance(data, str) else bytes(data or b"")


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw


@dataclass
class Injection:
    status: int
    body: str
    headers: dict[str, str]
    times: int
    method: str | None = None  # None: any method of the route


@dataclass
class Router:
    """Serves every request from the registered routes; scripted failures and latencies."""

    requests: list[Call] = field(default_factory=list)
    unmatched: list[Call] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)  # "METHOD route" -> seconds
    lock: threading.RLock = field(default_factory=threading.RLock)
    _routes: list[Route] = field(default_factory=list)
    _injections: dict[str, list[Injection]] = field(default_factory=dict)

    def attach(self, rsps: responses.RequestsMock) -> None:
        for method in ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"):
            rsps.add_callback(method, re.compile(r"https?://.*"), callback=self._dispatch)

    def add(self, routes: Iterable[Route]) -> None:
        self._routes.extend(routes)

    @property
    def route_names(self) -> list[str]:
        return sorted({r.name for r in self._routes})

    def inject(
        self,
        route_name: str,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of a route with ``status`` (e.g. 429 + Retry-After)."""
        text = json.dumps(
            body
            if body is not None
            else {"error": {"code": f"Injected{status}", "message": f"injected HTTP {status}"}}
        )
        self._injections.setdefault(route_name, []).append(
            Injection(status, text, dict(headers or {}), times, method)
        )

    def calls(self, route_name: str, method: str | None = None) -> list[Call]:
        return [c for c in self.requests if c.route == route_name and method in (None, c.method)]

    def check(self) -> None:
        """Fail when the SDK sent a request the fake has no route for."""
        assert not self.unmatched, "unserved requests: " + ", ".join(
            f"{c.method} {c.url}" for c in self.unmatched
        )

    def _match(self, call: Call) -> tuple[Route, re.Match[str]] | None:
        for candidate in self._routes:
            found = candidate.pattern.match(call.url)
            if candidate.method == call.method and found:
                return candidate, found
        return None

    def _dispatch(self, request: Any) -> Reply:
        raw = _raw_body(request.body)
        call = Call(request.method, request.url, "", dict(request.headers), _parse_body(raw), raw)
        matched = self._match(call)
        if matched is not None:
            delay = self.latency.get(f"{call.method} {matched[0].name}", 0.0)
            if delay:
                time.sleep(delay)  # outside the lock: other pollers go on meanwhile
        with self.lock:
            if matched is None:
                call.route = "unmatched"
                self.requests.append(call)
                self.unmatched.append(call)
                return error_reply(
                    501, "FakeHasNoRoute", f"fake has no route for {call.method} {call.url}"
                )
            chosen, found = matched
            call.route = chosen.name
            self.requests.append(call)
            reply = self._injected(chosen.name, call.method) or chosen.handler(call, found)
            call.status, call.reply_headers, call.reply_body = reply
            return reply

    def _injected(self, route_name: str, method: str) -> Reply | None:
        queue = self._injections.get(route_name, [])
        head = next((i for i in queue if i.method in (None, method)), None)
        if head is None:
            return None
        head.times -= 1
        if head.times <= 0:
            queue.remove(head)
        return head.status, {"Content-Type": "application/json", **head.headers}, head.body


@dataclass(frozen=True)
class Scope:
    """Where the fake workspace and registry live, and the URLs the SDK derives from that."""

    subscription: str
    resource_group: str
    workspace: str
    registry: str
    location: str
    experiment: str
    registry_subscription: str = "11111111-0000-4000-8000-000000000000"
    registry_resource_group: str = "registry-rg"

    @property
    def ws_path(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )

    @property
    def ws(self) -> str:
        """The workspace's ARM URL, as a regex."""
        return re.escape(ARM + self.ws_path)

    @property
    def region_host(self) -> str:
        """The region's data-plane host: discovery, RunHistory, MLflow, registries."""
        return f"https://{self.location}.api.azureml.ms"

    @property
    def registry_host(self) -> str:
        """The registry's resource-provider host (from registry discovery)."""
        return f"https://{self.location}.experiments.azureml.net"

    @property
    def registry_path(self) -> str:
        return self.registry_path_of(self.registry)

    def registry_path_of(self, registry: str) -> str:
        """The registry front end's path (recorded: test_model.pyTestModeltest_crud_model_with_
        system_metadata.json, ``/mferp/managementfrontend/subscriptions/.../registries/R``)."""
        return (
            f"/mferp/managementfrontend/subscriptions/{self.registry_subscription}/"
            f"resourceGroups/{self.registry_resource_group}/providers/"
            f"Microsoft.MachineLearningServices/registries/{registry}"
        )

    def scoring_uri(self, endpoint: str) -> str:
        return f"https://{endpoint}.{self.location}.inference.ml.azure.com/score"


NAME = r"([^/?]+)"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
