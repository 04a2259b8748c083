"""``python -m harness replay CASSETTE_DIR``: the e2e suite on ``--backend azure`` against a
recorded conversation, offline and without credentials.

vcrpy plays the cassettes back (it patches urllib3's connections, so every client of the run is
answered and nothing reaches the network); this module decides which recorded answer a request
gets, and says plainly when there is none.

Which answer: requests are matched on method, host, path and query (bodies are not matched: they
carry timestamps and upload digests). Among the matching recorded exchanges a request gets the
first one not played yet that comes after the last exchange its own thread was answered with, so
a thread that polled less often than last night (MLflow metrics are read at most every 2 s, and
a replay runs in seconds) skips the answers it no longer asks for instead of reading stale ones.
A GET asked more often than recorded (a timing-dependent poll) gets the latest answer again; a
PUT, POST or DELETE is answered at most as often as it was recorded. Threads interleave
differently in a replay (more so on a loaded machine), so a thread may find the copy it had last
night taken by another thread and get a later one: its clock then moves only to where its own
copy was, not past its other later answers (a job's status polls among them). A request whose
recorded answers are all the same (the workspace, a datastore) tells nothing of when it came:
it gets the first copy not played yet and leaves the clock where it was.

Names line up because the replay reuses the run id, the seed of Python's ``random`` (azure-ai-ml
draws job names from it) and the harness's recorded name suffixes (``harness.naming``); the
settings come from the cassette, the subscription as the scrubber's placeholder. Server-side
delays (``Retry-After``) are answered at once.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import random
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.backends.azure import AzureBackend
    from harness.config import HarnessConfig

log = logging.getLogger("harness")

FORMAT = 1  # the harness metadata's format (recording.FORMAT); kept here to load cheaply
SUFFIX = ".yaml"
WORKSPACE_URL = re.compile(
    r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/([^/?]+)",
    re.I,
)
_UPLOAD_DIGEST = re.compile(r"/LocalUpload/[0-9a-f]{16,}/", re.I)  # content-addressed folder
SAFE_METHODS = ("GET", "HEAD")
DELAY_HEADERS = ("retry-after", "x-ms-retry-after-ms", "retry-after-ms")


class ReplayError(HarnessError):
    """A cassette cannot be replayed, or the code sent a request it does not answer."""


@dataclass
class Recording:
    """The cassettes of one recorded run (one per process), loaded and checked."""

    directory: Path
    files: list[Path]
    meta: dict[str, Any]
    exchanges: list[tuple[Any, dict[str, Any], str]]  # vcr Request, response, "file#index"

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", "run"))


def cassette_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        what = "is a file, not a directory" if directory.exists() else "does not exist"
        raise ReplayError(
            f"cassette directory {directory} {what}; pass the directory --record-traffic "
            f"wrote (one *{SUFFIX} cassette per process)"
        )
    files = sorted(directory.glob(f"*{SUFFIX}"))
    if not files:
        raise ReplayError(
            f"cassette directory {directory} holds no *{SUFFIX} cassette; pass the directory "
            "--record-traffic wrote, or record one with --backend azure --record-traffic DIR"
        )
    return files


def _read(path: Path) -> tuple[list[Any], list[dict[str, Any]], dict[str, Any]]:
    """vcrpy's loader; any unreadable file or foreign layout becomes one clear error."""
    from vcr.serialize import deserialize
    from vcr.serializers import yamlserializer

    try:
        loaded = deserialize(path.read_text(encoding="utf-8"), yamlserializer)
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"cassette {path} cannot be read ({exc}); re-record it") from None
    except Exception as exc:  # yaml and vcrpy raise many types for a corrupt file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReplayError(
            f"cassette {path} is not a readable vcrpy cassette ({first}); restore it from "
            "the nightly's artifact or record it again"
        ) from None
    requests, responses, *rest = loaded
    meta = (rest[0] if rest else {}).get("harness")
    if not isinstance(meta, dict):
        raise ReplayError(
            f"cassette {path} has no harness metadata (not written by --record-traffic or "
            "tools/sdk_recordings_to_cassette.py); record it with --record-traffic"
        )
    if meta.get("format") != FORMAT:
        raise ReplayError(
            f"cassette {path} has format {meta.get('format')!r}; this harness reads format "
            f"{FORMAT}: record it again with this version"
        )
    return requests, responses, meta


def load(
    directory: Path, model_name: str | None = None, model_version: str | None = None
) -> Recording:
    """Every cassette of ``directory``, which must be of one run and, when asked, one model."""
    files = cassette_files(directory)
    exchanges: list[tuple[Any, dict[str, Any], str]] = []
    first: tuple[Path, dict[str, Any]] | None = None
    for path in files:
        requests, responses, meta = _read(path)
        first = first or (path, meta)
        _same_run(first, (path, meta))
        for index, (request, response) in enumerate(zip(requests, responses, strict=True)):
            exchanges.append((request, response, f"{path.name}#{index}"))
    assert first is not None
    path, meta = first
    _asked_model(path, meta, model_name, model_version)
    exchanges.sort(key=lambda e: float(e[1].get("harness", {}).get("at_s", 0.0)))
    return Recording(directory, files, meta, exchanges)


def _same_run(first: tuple[Path, dict[str, Any]], other: tuple[Path, dict[str, Any]]) -> None:
    for key in ("run_id", "model_name", "model_version"):
        if first[1].get(key) != other[1].get(key):
            raise ReplayError(
                f"cassettes {first[0]} and {other[0]} are of different runs ({key} "
                f"{first[1].get(key)!r} vs {other[1].get(key)!r}); keep one run per directory"
            )


def _asked_model(path: Path, meta: dict[str, Any], name: str | None, version: str | None) -> None:
    recorded = (meta.get("model_name"), meta.get("model_version"))
    if (name or recorded[0], version or recorded[1]) != recorded:
        raise ReplayError(
            f"cassette {path} recorded model {recorded[0]} version {recorded[1]}, not "
            f"{name or recorded[0]} version {version or recorded[1]}; a replay sends the "
            "recorded run's requests: drop --model-name/--model-version, or replay the "
            "cassette of that model"
        )


# -- matching and playback


def request_key(method: str, uri: str, api_version: bool = True) -> str:
    """What a request is matched on: method, host, path and sorted query."""
    parts = urlsplit(uri)
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if api_version or k != "api-version"
    )
    path = _UPLOAD_DIGEST.sub("/LocalUpload/*/", parts.path)
    return f"{method.upper()} {(parts.hostname or '').lower()}{path}?{urlencode(query)}"


@dataclass
class Unanswered:
    """A request of a replay that the recording had no answer for."""

    method: str
    url: str
    nearest: str
    why: str

    def message(self, where: str) -> str:
        return (
            f"replay of {where}: no recorded answer for {self.method} {self.url} ({self.why}); "
            f"nearest recorded request: {self.nearest}. The code now sends a request the "
            "recorded run did not: if that is intended, record the run again"
        )


@dataclass
class Player:
    """Chooses the recorded answer of each request (see the module docstring)."""

    recording: Recording
    match_api_version: bool = True
    played: dict[int, int] = field(default_factory=dict)
    first_unanswered: Unanswered | None = None
    unanswered: list[Unanswered] = field(default_factory=list)
    answered: int = 0
    _clock: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _index: dict[str, list[int]] = field(default_factory=dict)
    _timeless: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        answers: dict[str, set[str]] = {}
        for index, (request, response, _) in enumerate(self.recording.exchanges):
            key = request_key(request.method, request.uri, self.match_api_version)
            self._index.setdefault(key, []).append(index)
            answers.setdefault(key, set()).add(_answer_text(response))
        self._timeless = {key for key, texts in answers.items() if len(texts) == 1}

    def answer(self, method: str, uri: str) -> dict[str, Any]:
        key = request_key(method, uri, self.match_api_version)
        thread = threading.get_ident()
        with self._lock:
            candidates = self._index.get(key, [])
            clock = self._clock.get(thread, -1)
            timeless = key in self._timeless
            index = self._choose(method, candidates, -1 if timeless else clock)
            if index is None:
                self._unanswered(method, uri, candidates)
            assert index is not None
            self.played[index] = self.played.get(index, 0) + 1
            if not timeless:  # to this thread's own copy: the first one after its clock
                own = next((i for i in candidates if i > clock), index)
                self._clock[thread] = max(clock, min(own, index))
            self.answered += 1
        return _undelayed(self.recording.exchanges[index][1])

    def _choose(self, method: str, candidates: list[int], clock: int) -> int | None:
        unplayed = [i for i in candidates if not self.played.get(i)]
        later = [i for i in unplayed if i > clock]
        if later:
            return later[0]
        if method.upper() in SAFE_METHODS and candidates:
            earlier = [i for i in candidates if i <= clock]
            return earlier[-1] if earlier else candidates[-1]  # a poll asked once more
        return unplayed[0] if unplayed else None

    def _unanswered(self, method: str, uri: str, candidates: list[int]) -> None:
        exchanges = self.recording.exchanges
        if candidates:
            why = f"all {len(candidates)} recorded answers to it were already played"
            nearest_index = candidates[-1]
        else:
            why = "the recording never sent it"
            wanted = f"{method} {uri}"
            ratios = [
                difflib.SequenceMatcher(None, wanted, f"{r.method} {r.uri}").ratio()
                for r, _, _ in exchanges
            ]
            nearest_index = max(range(len(ratios)), key=ratios.__getitem__) if ratios else -1
        nearest = "none (the recording is empty)"
        if nearest_index >= 0:
            request, _, where = exchanges[nearest_index]
            nearest = f"{request.method} {request.uri} ({where})"
        unanswered = Unanswered(method, uri, nearest, why)
        self.unanswered.append(unanswered)
        if self.first_unanswered is None:
            self.first_unanswered = unanswered
        raise ReplayError(unanswered.message(str(self.recording.directory)))


def _answer_text(response: dict[str, Any]) -> str:
    """What a recorded answer says: its status and body (headers carry dates and ids)."""
    body = response.get("body", {})
    text = body.get("string", "") if isinstance(body, dict) else body
    return f"{response.get('status', {}).get('code')} {text!r}"


def _undelayed(response: dict[str, Any]) -> dict[str, Any]:
    """The recorded answer without its server-side delay (a replay never waits)."""
    headers = {
        k: v for k, v in response.get("headers", {}).items() if k.lower() not in DELAY_HEADERS
    }
    headers["retry-after-ms"] = ["1"]  # azure-core polls at once (0 would mean its default)
    return {**response, "headers": headers}


def _cassette_class(player: Player) -> type:
    """A vcrpy Cassette that is answered by ``player`` and never writes."""
    from vcr.cassette import Cassette

    class PlayerCassette(Cassette):  # type: ignore[misc]
        def _load(self) -> None:
            self.rewound = True

        def _save(self, force: bool = False) -> None:
            return None

        def can_play_response_for(self, request: Any) -> bool:
            return True  # every request is answered, or refused with the reason

        def play_response(self, request: Any) -> dict[str, Any]:
            return player.answer(request.method, request.uri)

    return PlayerCassette


@contextmanager
def playing(player: Player) -> Iterator[Player]:
    """vcrpy's patches active, every request answered by ``player``."""
    from vcr.cassette import CassetteContextDecorator
    from vcr.record_mode import RecordMode

    context = CassetteContextDecorator.from_args(
        _cassette_class(player), path=str(player.recording.directory), record_mode=RecordMode.NONE
    )
    chatty = logging.getLogger("vcr")  # a line per played answer: the harness's log says more
    level = chatty.level
    chatty.setLevel(logging.WARNING)
    try:
        with _one_connection_at_a_time():
            context.__enter__()
            try:
                yield player
            finally:
                with _CONNECTIONS:  # no thread is half-way through vcrpy's reset
                    context.__exit__(None, None, None)
    finally:
        chatty.setLevel(level)


# vcrpy builds each connection with the real classes put back for every thread
# (``vcr.patch.force_reset`` in ``VCRConnection.__init__``): a thread that opens a connection
# meanwhile (the SDK's pollers run beside the main thread) gets a real one and goes to the
# network, and a reset that ends after the cassette was closed puts vcrpy's classes back for
# good. During a replay, connections are therefore opened one at a time.
_CONNECTIONS = threading.RLock()


@contextmanager
def _one_connection_at_a_time() -> Iterator[None]:
    from contextlib import ExitStack
    from unittest import mock

    import vcr.patch
    from urllib3 import connectionpool

    reset = vcr.patch.force_reset

    @contextmanager
    def locked_reset() -> Iterator[None]:
        with _CONNECTIONS, reset():
            yield

    def locked(new_conn: Callable[..., Any]) -> Callable[..., Any]:
        def opened_alone(pool: Any, *args: Any, **kwargs: Any) -> Any:
            with _CONNECTIONS:
                return new_conn(pool, *args, **kwargs)

        return opened_alone

    with ExitStack() as patches:
        patches.enter_context(mock.patch.object(vcr.patch, "force_reset", locked_reset))
        for pool in (connectionpool.HTTPConnectionPool, connectionpool.HTTPSConnectionPool):
            patches.enter_context(mock.patch.object(pool, "_new_conn", locked(pool._new_conn)))
        yield


# -- what makes the names: the seed of random, the harness's recorded suffixes


@contextmanager
def recorded_names(meta: dict[str, Any]) -> Iterator[None]:
    """``naming.NAME_SOURCES`` return what they returned in the recorded run, in order (a
    fresh value once the recorded ones are used up)."""
    from harness import naming

    kept: dict[str, list[str]] = {}
    for source, value in meta.get("names", []):
        kept.setdefault(source, []).append(value)
    originals = {source: getattr(naming, source) for source in naming.NAME_SOURCES}

    def replayed(source: str) -> Callable[..., str]:
        def draw(*args: Any) -> str:
            values = kept.get(source, [])
            return values.pop(0) if values else str(originals[source](*args))

        return draw

    random.seed(meta.get("random_seed"))
    for source in naming.NAME_SOURCES:
        setattr(naming, source, replayed(source))
    try:
        yield
    finally:
        for source, original in originals.items():
            setattr(naming, source, original)


class StaticCredential:
    """A TokenCredential for a replay: an unsigned JWT for the scope (the SDK reads its
    audience), never a real token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        import base64
        import json
        import time

        from azure.core.credentials import AccessToken

        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

        expires = int(time.time()) + 3600
        audience = scopes[0].removesuffix("/.default") if scopes else ""
        claims = part({"aud": audience, "exp": expires})
        token = f"{part({'alg': 'none'})}.{claims}.cmVwbGF5"  # base64url of "replay"
        return AccessToken(token, expires)


def replay_backend(config: HarnessConfig) -> AzureBackend:
    from harness.backends.azure import AzureBackend

    backend = AzureBackend(config, credential=StaticCredential(), retry_total=2)
    backend.poll_interval_s = 0.0
    return backend


class ReplayPlugin:
    """Serves a pytest session from a recording: playback, names, a credential-free backend."""

    def __init__(self, recording: Recording) -> None:
        self.player = Player(recording, bool(recording.meta.get("match_api_version", True)))
        self._stack: list[Any] = []

    def pytest_configure(self, config: pytest.Config) -> None:
        names, plays = recorded_names(self.player.recording.meta), playing(self.player)
        self._stack = [names, plays]
        names.__enter__()
        plays.__enter__()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        log.info("%s", self.summary())
        for context in reversed(self._stack):
            context.__exit__(None, None, None)
        self._stack = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_harness_create_backend(self, harness_config: HarnessConfig) -> AzureBackend:
        return replay_backend(harness_config)

    def summary(self) -> str:
        player, recording = self.player, self.player.recording
        line = (
            f"replayed {len(player.played)} of {len(recording.exchanges)} recorded exchanges "
            f"({player.answered} answers) from {recording.directory}"
        )
        if player.first_unanswered is not None:
            line += "\n" + player.first_unanswered.message(str(recording.directory))
        return line


def pytest_args(recording: Recording, suite: Path, report_dir: Path) -> list[str]:
    """The e2e suite's command line for a replay: the recorded run id and settings."""
    from harness.config import BY_NAME

    meta = recording.meta
    settings = dict(meta.get("settings", {}))
    if not Path(str(settings.get("dataset", ""))).is_dir():
        settings.pop("dataset", None)  # a hub dataset cannot be fetched offline: the shipped one
        settings["dataset"], settings["dataset_percent"] = _shipped_dataset(), 100
    args = [str(suite), "--backend", "azure", "--run-id", str(meta["run_id"])]
    args += ["--model-name", str(meta["model_name"]), "--model-version", str(meta["model_version"])]
    for name, value in settings.items():
        option = BY_NAME[name]
        values = value if isinstance(value, list) else [value]
        if option.flag:
            args += [option.cli] if value else []
            continue
        for item in values:
            args += [option.cli, str(item)]
    return [*args, "--report-dir", str(report_dir), "--history", str(report_dir / "history")]


def _shipped_dataset() -> str:
    from harness.config import RESOURCES

    return str(RESOURCES / "ultrachat_mini")


def default_suite() -> Path:
    """The repository's e2e suite next to the package (a source checkout)."""
    return Path(__file__).resolve().parents[1] / "tests" / "e2e"


def run(
    directory: Path,
    suite: Path | None = None,
    report_dir: Path | None = None,
    extra: Sequence[str] = (),
    model_name: str | None = None,
    model_version: str | None = None,
    main: Callable[..., int] | None = None,
) -> tuple[int, str]:
    """Replay ``directory``'s run through the e2e suite; (pytest's exit code, summary)."""
    import tempfile

    recording = load(directory, model_name, model_version)
    if recording.kind != "run":
        raise ReplayError(
            f"cassettes in {directory} are {recording.kind!r} recordings (single steps, not a "
            "whole run); the unit suite replays them step by step (tests/unit/test_cassettes.py)"
        )
    suite = suite or default_suite()
    if not suite.exists():
        raise ReplayError(f"e2e suite {suite} does not exist; pass --suite with tests/e2e")
    plugin = ReplayPlugin(recording)
    with tempfile.TemporaryDirectory(prefix="harness-replay-") as scratch:
        args = pytest_args(recording, suite, report_dir or Path(scratch) / "report")
        code = (main or pytest.main)([*args, "-p", "no:cacheprovider", *extra], plugins=[plugin])
    return int(code), plugin.summary()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cassettes", type=Path, help="the directory --record-traffic wrote")
    parser.add_argument("--suite", type=Path, help="the e2e suite (default: tests/e2e)")
    parser.add_argument("--report-dir", type=Path, help="the replay's run report")
    parser.add_argument("--model-name", help="refuse a cassette of another model")
    parser.add_argument("--model-version", help="refuse a cassette of another model version")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, after --")


def command(args: argparse.Namespace) -> int:
    """Exit 0 when the suite passed against the recording; the summary names the first
    request it did not answer."""
    code, summary = run(
        args.cassettes,
        suite=args.suite,
        report_dir=args.report_dir,
        extra=args.pytest_args,
        model_name=args.model_name,
        model_version=args.model_version,
    )
    print(summary, file=sys.stdout if code == 0 else sys.stderr)
    return code
