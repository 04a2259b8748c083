"""``--record-traffic DIR``: one cassette per process with the run's whole HTTP conversation.

Every client of an Azure run sends through ``requests``: azure-core's RequestsTransport (ARM,
the registry front end, the regional APIs, storage uploads, the scoring POST) and MLflow's
RestStore. The recorder wraps ``requests.Session.send``, the one call all of them share, so it
needs to know no client and covers a route added later (the FineTuning job type) for free.

The file is a vcrpy cassette (its YAML schema, written with its serializer, loaded and played
back by vcrpy in ``harness.replay``). vcrpy's own recorder patches urllib3's connections, one
level below ``requests``' adapter; the project's Azure fake answers at the adapter
(``responses``), so vcrpy's recorder would see nothing of a run against the fake and the unit
suite could not prove what the recorder writes. Recording one level up, at ``Session.send``,
is the same code in a live run and against the fake.

Everything is scrubbed in memory (``scrubbing.Scrubber``) and written once, atomically and
0600, when the process ends. The metadata says what a replay needs to send the same requests:
the run id, the replayable settings, the seed of Python's ``random`` (azure-ai-ml draws job
names from it) and every random name suffix the harness drew (``naming``).
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from harness.backends.azure.scrubbing import Scrubber

if TYPE_CHECKING:
    import requests

    from harness.config import HarnessConfig

FORMAT = 1  # the harness metadata's format inside vcrpy's cassette (version 1) format
SUFFIX = ".yaml"
# Settings a replay passes again (the rest are local paths, or say nothing about requests).
NOT_REPLAYED = frozenset(
    {
        "record_traffic",
        "report_dir",
        "history_dir",
        "workspace_dir",
        "azure_config_file",
        "compare_to",
        "interactive_login",
        "require_live",
        "azure_subscription_id",
        "azure_resource_group",
        "azure_workspace",
        "run_id",
        "backend",
    }
)
# Hop-by-hop and encoding headers: the body is stored decoded, so a replay must not decode it.
DROPPED_RESPONSE_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})
UPLOAD_HOST_SUFFIX = ".blob.core.windows.net"


def cassette_path(directory: Path, run_id: str, process: str) -> Path:
    return directory / f"{run_id}-{process}{SUFFIX}"


def versions() -> dict[str, str]:
    """The libraries that shape the requests, as the cassette's metadata names them."""
    found = {}
    for name in ("llm-finetune-harness", "azure-ai-ml", "azure-core", "mlflow-skinny"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def replayable_settings(cfg: HarnessConfig) -> dict[str, Any]:
    """The settings the run was given (not defaults), as text a replay passes again."""
    from harness.config import BY_NAME

    chosen: dict[str, Any] = {}
    for name in BY_NAME:
        if name in NOT_REPLAYED or cfg.sources.get(name, "default").startswith(("default", "der")):
            continue
        value = getattr(cfg, name)
        chosen[name] = ["=".join(pair) for pair in value] if isinstance(value, tuple) else value
    return {
        name: str(value) if isinstance(value, Path) else value for name, value in chosen.items()
    }


@dataclass
class TrafficRecorder:
    """Records every ``requests`` exchange of this process between ``start`` and ``stop``."""

    path: Path
    meta: dict[str, Any]
    scrubber: Scrubber = field(default_factory=Scrubber)
    interactions: list[dict[str, Any]] = field(default_factory=list)
    names: list[list[str]] = field(default_factory=list)  # [naming source, value]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _t0: float = field(default_factory=time.monotonic)
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> None:
        import requests

        from harness import naming

        seed = self.meta.setdefault("random_seed", secrets.randbits(63))
        random.seed(seed)  # azure-ai-ml's generated job names (job_name_generator) come from it
        original_send = requests.Session.send

        def send(session: requests.Session, request: Any, **kwargs: Any) -> requests.Response:
            return self._send(original_send, session, request, **kwargs)

        requests.Session.send = send  # type: ignore[method-assign,assignment]
        self._undo = [lambda: setattr(requests.Session, "send", original_send)]
        for source in naming.NAME_SOURCES:
            self._keep_names(naming, source)

    def _keep_names(self, module: Any, source: str) -> None:
        """Wrap one of ``naming.NAME_SOURCES`` so that every value it returns is kept."""
        original = getattr(module, source)

        def drawn(*args: Any) -> Any:
            value = original(*args)
            with self._lock:
                self.names.append([source, value])
            return value

        setattr(module, source, drawn)
        self._undo.append(lambda: setattr(module, source, original))

    def stop(self) -> Path:
        """Restore ``requests`` and write the cassette (0600, atomically)."""
        for undo in reversed(self._undo):
            undo()
        self._undo = []
        return self.save()

    def save(self) -> Path:
        from vcr.serializers import yamlserializer

        from harness.files import PRIVATE, write_atomic

        with self._lock:
            interactions, names = list(self.interactions), list(self.names)
        meta = {**self.meta, "names": names, "interactions": len(interactions)}
        meta["settings"] = {**meta.get("settings", {}), **workspace_settings(interactions)}
        data = {"version": 1, "interactions": interactions, "metadata": {"harness": meta}}
        text = self.scrubber.known(yamlserializer.serialize(data))  # secrets learnt late too
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return write_atomic(self.path, text, PRIVATE)

    def _send(
        self, original: Callable[..., requests.Response], session: Any, request: Any, **kwargs: Any
    ) -> requests.Response:
        started = time.monotonic()
        response = original(session, request, **kwargs)
        content = response.content  # read once; requests serves it again to the caller
        elapsed = time.monotonic() - started
        record = {
            "request": self._request(request),
            "response": self._response(response, content),
        }
        with self._lock:
            record["response"]["harness"] = {
                "seq": len(self.interactions),
                "at_s": round(started - self._t0, 4),
                "elapsed_s": round(elapsed, 4),
                "thread": threading.current_thread().name,
            }
            self.interactions.append(record)
        return response

    def _request(self, request: Any) -> dict[str, Any]:
        scrub = self.scrubber
        headers = scrub.headers({k: [str(v)] for k, v in request.headers.items()})
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes) or (body and _is_upload(request.method, request.url)):
            # upload content is data, not conversation: its size and digest only
            size = len(body) if isinstance(body, bytes) else None
            digest = hashlib.sha256(body).hexdigest() if isinstance(body, bytes) else None
            headers["X-Harness-Omitted-Body"] = [f"bytes={size} sha256={digest}"]
            body = b""
        return {
            "method": request.method,
            "uri": scrub.text(request.url),
            "body": _text(scrub.body(body)) if body else None,
            "headers": headers,
        }

    def _response(self, response: Any, content: bytes) -> dict[str, Any]:
        raw = {
            k: [str(v)]
            for k, v in response.headers.items()
            if k.lower() not in DROPPED_RESPONSE_HEADERS
        }
        body = self.scrubber.body(content) if content else b""
        headers = self.scrubber.headers(raw)
        headers["Content-Length"] = [str(len(body))]
        return {
            "status": {"code": response.status_code, "message": response.reason or ""},
            "headers": headers,
            "body": {"string": _text(body)},
        }


def _is_upload(method: str, url: str) -> bool:
    return method == "PUT" and (urlsplit(url).hostname or "").endswith(UPLOAD_HOST_SUFFIX)


def _text(body: bytes) -> str | bytes:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body


def workspace_settings(interactions: list[dict[str, Any]]) -> dict[str, str]:
    """The workspace the run talked to, read from its first workspace URL (already scrubbed):
    the same whether the ids came from options or from a config.json."""
    from harness.replay import WORKSPACE_URL

    for interaction in interactions:
        found = WORKSPACE_URL.search(interaction["request"]["uri"])
        if found:
            return {
                "azure_subscription_id": found.group(1),
                "azure_resource_group": found.group(2),
                "azure_workspace": found.group(3),
            }
    return {}


def start(cfg: HarnessConfig, process: str) -> TrafficRecorder:
    """A started recorder for this process of an Azure run, its secrets known in advance."""
    import os

    recorder = TrafficRecorder(
        path=cassette_path(cfg.record_traffic or Path("."), cfg.run_id, process),
        meta={
            "format": FORMAT,
            "kind": "run",
            "source": "recorded by --record-traffic (a real run when the workspace was live)",
            "run_id": cfg.run_id,
            "model_name": cfg.model_name,
            "model_version": cfg.model_version,
            "process": process,
            "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": versions(),
            "settings": replayable_settings(cfg),
        },
    )
    recorder.scrubber.add_id("subscription", cfg.azure_subscription_id)
    recorder.scrubber.add_id("tenant", os.environ.get("AZURE_TENANT_ID"))
    recorder.scrubber.add_secrets(
        os.environ.get(name)
        for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_PASSWORD")
    )
    recorder.scrubber.add_secrets([os.environ.get("AZURE_USERNAME")], "user@example.invalid")
    recorder.start()
    return recorder
