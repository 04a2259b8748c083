"""Run ids, resource names within Azure's rules, and the ownership tags the sweep relies on.

Endpoint names are unique per region and a deleted name cannot be reused at once, so every
name carries the run id plus fresh randomness. Every created resource is tagged with the run
id, its creation time and an expiry time, so that the sweep can collect what a crashed run left
behind and never touch anything it did not create.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from harness.errors import ConfigError

TAG_RUN_ID = "harness-run-id"
TAG_CREATED = "harness-created"
TAG_EXPIRES = "harness-expires"

NAME_PATTERN = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
# Azure ML's model name rule (the model REST API's path pattern); also keeps a name from being
# a path (``../x``), a quote in a registry filter, or an empty string.
MODEL_NAME_PATTERN = re.compile(r"^(?![-_.])[a-zA-Z0-9\-_.]{1,255}(?<!\.)$")
MIN_NAME_LEN = 3
# Compute names (docs: https://learn.microsoft.com/azure/machine-learning/how-to-create-attach-compute-cluster):
# 3-24 characters, letters, digits and '-', starting with a letter, a '-' followed later by a
# letter, and unique across all computes of the Azure region, not only of the workspace.
COMPUTE_NAME_LEN = (3, 24)
_COMPUTE_CHARS = re.compile(r"[A-Za-z0-9-]*")
_ALPHABET = string.ascii_lowercase + string.digits
_SUFFIX_LEN = 5
_MIN_MAX_LEN = 8


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_run_id(now: datetime | None = None) -> str:
    """Short, lowercase, letter first, sortable by time: ``h`` + UTC timestamp + 4 random."""
    stamp = _as_utc(now or _utcnow()).astimezone(UTC).strftime("%y%m%d%H%M%S")
    return f"h{stamp}{_random(4)}"


def _slug(text: str) -> str:
    """Lowercase letters, digits and single inner hyphens only."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def resource_name(prefix: str, run_id: str, max_len: int = 32) -> str:
    """``{prefix}-{run_id}-{random}`` cut to ``max_len``, always valid, never the same twice.

    The random suffix is never cut; the prefix gives way first, then the run id.
    """
    if max_len < _MIN_MAX_LEN:
        raise ConfigError(
            f"resource names need max_len >= {_MIN_MAX_LEN} to stay unique, got {max_len}; "
            "raise max_len"
        )
    head = _slug(prefix)
    if not head[:1].isalpha():
        head = f"h{head}"
    run = _slug(run_id)
    budget = max_len - _SUFFIX_LEN - 1  # room left for "{head}-{run}"
    room_for_head = max(1, budget - len(run) - 1) if run else budget
    head = head[:room_for_head].rstrip("-")
    stem = f"{head}-{run}"[:budget].rstrip("-") if run else head
    return f"{stem}-{_random(_SUFFIX_LEN)}"


def check_model_name(name: str, option: str) -> str:
    """``name`` when it is a valid registry model name; else ConfigError naming ``option``."""
    if MODEL_NAME_PATTERN.fullmatch(name):
        return name
    raise ConfigError(
        f"model name {name!r} is not valid: a model name has 1-255 letters, digits, '-', '_' "
        f"or '.', starts with a letter or digit and does not end with '.' (Azure ML's rule); "
        f"pass {option} with such a name, e.g. Phi-3-mini-4k-instruct"
    )


def compute_name_problems(name: str) -> list[str]:
    """What breaks Azure's compute naming rules (empty when the name is valid)."""
    low, high = COMPUTE_NAME_LEN
    problems = []
    if not low <= len(name) <= high:
        problems.append(f"it has {len(name)} characters, not {low}-{high}")
    if not (name[:1].isascii() and name[:1].isalpha()):
        problems.append("it does not start with a letter")
    if not _COMPUTE_CHARS.fullmatch(name):
        problems.append("it has characters other than letters, digits and '-'")
    elif "-" in name and not re.search(r"[A-Za-z]", name[name.rindex("-") :]):
        problems.append("its last '-' is not followed by a letter")
    return problems


def endpoint_name(run_id: str) -> str:
    return resource_name("ep", run_id)


def deployment_name(run_id: str) -> str:
    return resource_name("dep", run_id)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def ownership_tags(run_id: str, ttl_h: float, now: datetime | None = None) -> dict[str, str]:
    """Tags stamped on every created resource; the sweep reads them back."""
    if ttl_h < 0:
        raise ConfigError(f"resource TTL must be >= 0 hours, got {ttl_h}; pass a positive TTL")
    created = _as_utc(now or _utcnow())
    return {
        TAG_RUN_ID: run_id,
        TAG_CREATED: _iso(created),
        TAG_EXPIRES: _iso(created + timedelta(hours=ttl_h)),
    }


def is_owned(tags: Mapping[str, str]) -> bool:
    """Created by this harness (any run); resources without the tag are never touched."""
    return bool(tags.get(TAG_RUN_ID))


def _parse_time(value: str | None) -> datetime | None:
    """A tag's timestamp in UTC, or None when missing or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return _as_utc(moment)


def _as_utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC, the only zone the tags use."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_expired(
    tags: Mapping[str, str], now: datetime | None = None, older_than_h: float | None = None
) -> bool:
    """Past its expiry, or created more than ``older_than_h`` hours ago.

    A missing or unreadable timestamp never makes a resource expired: when in doubt, keep it.
    """
    moment = _as_utc(now or _utcnow())
    expires = _parse_time(tags.get(TAG_EXPIRES))
    if expires is not None and moment > expires:
        return True
    created = _parse_time(tags.get(TAG_CREATED))
    if older_than_h is None or created is None:
        return False
    return moment - created > timedelta(hours=older_than_h)
