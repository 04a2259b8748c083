"""Scoring requests: through the SDK as the seed does, and as a plain HTTPS client would.

Neither judges the answer: an HTTP 200 with an ``error`` body is a real failure mode of the
serving containers, and ``harness.scoring.parse_response`` is where it is caught.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.backends.azure.clients import service_message

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from harness.backends.base import Deployment, Endpoint, ScoringReply, Secret


def invoke(workspace: MLClient, endpoint: Endpoint, deployment: Deployment,
           request: Mapping[str, Any]) -> ScoringReply:
    """``online_endpoints.invoke`` (it fetches the key itself); non-2xx becomes the reply.

    No reply at all (refused, reset, timed out) is the harness's ``ScoringError``, raised
    outside the ``except``: the SDK's frames hold the key in their arguments (its pipeline's
    ``post`` gets ``headers={'Authorization': 'Bearer ...'}``) and pytest prints them.
    """
    from azure.ai.ml.exceptions import MlException
    from azure.core.exceptions import AzureError, HttpResponseError

    from harness.backends.base import ScoringReply
    from harness.errors import ScoringError

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="harness-score-") as folder:
        path = Path(folder) / "request.json"
        path.write_text(json.dumps(request), encoding="utf-8")
        try:
            body = workspace.online_endpoints.invoke(
                endpoint.name, deployment_name=deployment.name, request_file=str(path))
        except HttpResponseError as exc:
            text = exc.response.text() if exc.response is not None else service_message(exc)
            return ScoringReply(int(exc.status_code or 0), text, time.monotonic() - started)
        except MlException as exc:  # a non-JSON error body: the SDK keeps only its text
            return ScoringReply(0, service_message(exc), time.monotonic() - started)
        except AzureError as exc:
            failure = f"{type(exc).__name__}: {service_message(exc)}"
        else:
            return ScoringReply(200, str(body), time.monotonic() - started)
    raise ScoringError(
        f"scoring deployment {deployment.name} of endpoint {endpoint.name} got no reply after "
        f"{time.monotonic() - started:.1f} s ({failure}); check that the endpoint is reachable "
        "from here and its deployment is healthy (its logs are in the studio)"
    )


def invoke_raw(endpoint: Endpoint, request: Mapping[str, Any], key: Secret | str | None,
               timeout_s: float) -> ScoringReply:
    """POST to the scoring URI as a plain HTTPS client would (``harness.backends.http``)."""
    from harness.backends.base import Secret
    from harness.backends.http import post_score

    return post_score(endpoint.scoring_uri, request, Secret.wrap(key), timeout_s,
                      f"check that endpoint {endpoint.name} exists and is reachable from here")
