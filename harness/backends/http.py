"""The raw scoring POST: what a client outside any SDK sends to an online endpoint.

Both backends use it: Azure for ``invoke_raw``, the local backend for every request. Any HTTP
answer comes back as a ``ScoringReply`` (judging it is ``harness.scoring``'s job); only "no
answer at all" raises, and then the harness's own ``ScoringError``, raised outside the
transport's ``except`` so that none of its frames (urllib3 prints the headers it was given,
``Authorization`` included) is chained to it. The key is a ``Secret`` and no frame of this
module holds it revealed, so even ``pytest --showlocals`` cannot print it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from harness.backends.base import ScoringReply, Secret
from harness.errors import ScoringError


def post_score(
    url: str,
    body: Mapping[str, Any],
    key: Secret | None,
    timeout_s: float,
    hint: str,
    headers: Mapping[str, str] | None = None,
    reason: Callable[[int, Mapping[str, str]], str] | None = None,
) -> ScoringReply:
    """POST ``body`` as JSON; ``key=None`` sends no Authorization header at all.

    ``hint`` is the next step to name when no reply came (where the endpoint's log is, ...);
    ``reason`` reads what a status means from the status and the reply's headers.
    """
    import requests

    started = time.perf_counter()
    try:
        reply = requests.post(
            url, json=dict(body), headers=_headers(key, headers), timeout=timeout_s
        )
    except requests.RequestException as exc:
        failure = f"{type(exc).__name__}: {exc}"
    else:
        said = reason(reply.status_code, reply.headers) if reason else ""
        return ScoringReply(reply.status_code, reply.text, time.perf_counter() - started, said)
    raise ScoringError(f"POST {url} got no reply within {timeout_s:g} s ({failure}); {hint}")


def _headers(key: Secret | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    sent = {"Content-Type": "application/json", **(extra or {})}
    if key is not None:
        sent["Authorization"] = f"Bearer {key.reveal()}"
    return sent
