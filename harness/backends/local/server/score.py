"""The scoring script the local endpoint's inference server runs (``init()`` / ``run()``).

``@rawhttp`` gives ``run`` the whole request, headers included, so the script can enforce the
endpoint key (the server has no auth), refuse oversized bodies and answer malformed requests
with a 4xx JSON body. The keys come from the environment and are never logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from azureml_inference_server_http.api.aml_request import rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse

from harness.backends.local.server import DEVICE_ENV, KEYS_ENV, contract, mark

_state: dict[str, Any] = {}


def init() -> None:
    mark("init_started")
    from harness.backends.local.server.generator import Generator

    keys = [key for key in os.environ.get(KEYS_ENV, "").split(",") if key]
    if not keys:
        raise RuntimeError(
            f"{KEYS_ENV} is empty: the endpoint would accept no key; set the endpoint keys"
        )
    _state["keys"] = keys
    _state["generate"] = Generator(
        Path(os.environ["AZUREML_MODEL_DIR"]), os.environ.get(DEVICE_ENV, "cpu")
    )
    mark("model_loaded")


@rawhttp  # type: ignore[untyped-decorator]
def run(request: Any) -> AMLResponse:
    status, payload = contract.handle(
        request.method,
        dict(request.headers),
        request.stream.read,
        request.content_length,
        _state["keys"],
        _state["generate"],
    )
    return AMLResponse(payload, status, json_str=True)
