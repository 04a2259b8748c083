"""Records tests/cassettes/fake-azure-phi-4/: the e2e suite on --backend azure against the
project's Azure fake, with --record-traffic.

This cassette proves the recorder and the replayer only: every answer in it is the fake's own,
not the service's (tests/cassettes/azure-sdk-assets/ holds real traffic). It keeps
``tests/unit/test_cassettes.py``'s whole-run path exercised until a nightly's cassette is
committed. Record it again when the harness's requests change on purpose:

    HARNESS_WORKSPACE=$PWD/.harness/workspace .venv/bin/python tools/record_fake_cassette.py
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "cassettes" / "fake-azure-phi-4"
RUN_ID = "hfake0001"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cassette directory")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.support.azure_fake.plugin import AzureFakePlugin
    from tests.unit.test_azure_suite import ARGS, E2E

    shutil.rmtree(args.out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="harness-fake-cassette-") as scratch:
        suite = Path(scratch) / "e2e"
        shutil.copytree(E2E, suite, ignore=shutil.ignore_patterns("__pycache__", "test_local*"))
        code = pytest.main(
            [
                str(suite),
                "--rootdir",
                scratch,
                *ARGS,
                "--model-name",
                "Phi-4",
                "--run-id",
                RUN_ID,
                f"--record-traffic={args.out}",
                f"--report-dir={Path(scratch) / 'report'}",
                f"--history={Path(scratch) / 'history'}",
            ],
            plugins=[AzureFakePlugin()],
        )
    print(f"recorded {sorted(p.name for p in args.out.glob('*.yaml'))} (pytest exit {code})")
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main())
