"""Which versions of a model still need a validating run (``python -m harness versions``).

The registry says which versions exist and which are archived or deprecated; the history says
which have a passing run. A nightly asks for the difference (``--unvalidated --json``) and
runs the suite once per version it gets, e.g. as a GitHub Actions matrix::

    matrix:
      include: ${{ fromJSON(needs.versions.outputs.json) }}
    ... --model-name ${{ matrix.model_name }} --model-version ${{ matrix.model_version }}

Archived versions are left out of the unvalidated list unless asked for: the registry no
longer offers them for fine-tuning, so a run would only fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends.base import RegistryVersion
from harness.history import passing


@dataclass(frozen=True)
class VersionStatus:
    model_name: str
    version: RegistryVersion
    last_passing_run: str | None
    last_passing_at: str | None

    @property
    def validated(self) -> bool:
        return self.last_passing_run is not None

    def to_dict(self) -> dict[str, Any]:
        """One CI matrix entry."""
        return {
            "model_name": self.model_name,
            "model_version": self.version.version,
            "archived": self.version.archived,
            "deprecation": dict(self.version.deprecation),
            "validated": self.validated,
            "last_passing_run": self.last_passing_run,
            "last_passing_at": self.last_passing_at,
        }


def _version_key(version: str) -> list[tuple[int, int | str]]:
    """Numeric parts compare as numbers: 9 < 10 < 10.1."""
    return [
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.\-+]", version)
    ]


def version_statuses(
    model_name: str, versions: Sequence[RegistryVersion], history_dir: Path
) -> list[VersionStatus]:
    """Every registry version with its latest passing run in the history, oldest version first."""
    statuses = []
    for version in sorted(versions, key=lambda v: _version_key(v.version)):
        runs = passing(history_dir, model_name, version.version)
        last = runs[-1]["run"] if runs else {}
        statuses.append(VersionStatus(model_name, version, last.get("id"), last.get("started_at")))
    return statuses


def versions_command(
    model_name: str,
    versions: Sequence[RegistryVersion],
    history_dir: Path,
    unvalidated: bool = False,
    as_json: bool = False,
    include_archived: bool = False,
) -> str:
    """The text ``python -m harness versions`` prints: a table, or JSON for a CI matrix."""
    statuses = version_statuses(model_name, versions, history_dir)
    if unvalidated:
        statuses = [
            s for s in statuses if not s.validated and (include_archived or not s.version.archived)
        ]
    if as_json:
        return json.dumps([s.to_dict() for s in statuses])
    if not statuses:
        return f"{model_name}: no version to show" + (" (all validated)" if unvalidated else "")
    rows = [("version", "archived", "deprecation", "last passing run")]
    rows += [
        (
            s.version.version,
            "yes" if s.version.archived else "no",
            ", ".join(f"{k} {v}" for k, v in sorted(s.version.deprecation.items())) or "-",
            f"{s.last_passing_run} ({s.last_passing_at})" if s.validated else "none",
        )
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join([f"{model_name} (history: {history_dir})", *lines])
