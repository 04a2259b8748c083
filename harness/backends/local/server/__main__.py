"""Start ``azmlinfsrv`` bound to 127.0.0.1: ``python -m harness.backends.local.server [args]``.

The server hard-codes the bind address 0.0.0.0 (``amlserver.DEFAULT_HOST``, read when ``run``
builds gunicorn's ``-b host:port``); a local test endpoint must not listen on every interface,
so the launcher replaces it before starting the unchanged server.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from harness.backends.local.server import BIND_HOST, mark


def main(argv: Sequence[str] | None = None) -> int:
    mark("main")
    from azureml_inference_server_http import amlserver

    mark("server_imported")

    amlserver.DEFAULT_HOST = BIND_HOST  # type: ignore[attr-defined]
    sys.argv = ["azmlinfsrv", *(sys.argv[1:] if argv is None else argv)]
    return int(amlserver.run() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
