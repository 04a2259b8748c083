"""Keeping secrets out of everything the harness writes down (reports, history, logs).

Two rules, applied to any JSON-like value before it is stored:

- a mapping entry whose key names a secret (a word of the key is ``secret``, ``password``,
  ``sas``, ``authorization``, ``credential``, ``signature``..., or its last word is ``key``
  or ``token``) keeps its key but loses its value, so a reader still sees that it existed;
- in any string, a URL carrying a SAS signature (``sig=``) loses its query string, and
  ``Bearer ...``, ``AccountKey=...``, ``SharedAccessSignature ...`` and ``key: value`` shapes
  lose their secret part; values the caller knows to be secret (an endpoint key it fetched)
  are replaced wherever they appear.

Keys are split into words (``primaryKey`` -> primary, key; ``max_new_tokens`` -> max, new,
tokens) so that ``tokenizer``, ``max_new_tokens`` or ``mean_token_accuracy`` are not mistaken
for secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
# a key holding one of these words anywhere is secret
SECRET_WORDS = frozenset(
    {
        "apikey",
        "accountkey",
        "secret",
        "secrets",
        "password",
        "passwd",
        "pwd",
        "sas",
        "sig",
        "signature",
        "authorization",
        "credential",
        "credentials",
        "connectionstring",
    }
)
# these only as the key's last word: ``access_token`` is secret, ``mean_token_accuracy`` (a
# training metric) and ``key_vault_id`` are not
SECRET_LAST_WORDS = frozenset({"key", "keys", "token", "cookie"})
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_TEXT_PATTERNS = (
    # a URL with a SAS signature: keep scheme, host and path, drop the whole query
    (re.compile(r"(https?://[^\s?\"'<>]+)\?[^\s\"'<>]*\bsig=[^\s\"'<>]*", re.I), rf"\1?{REDACTED}"),
    (re.compile(r"\bsig=[^&\s\"'<>]+", re.I), f"sig={REDACTED}"),
    (re.compile(r"\b(Bearer|Basic|SharedAccessSignature)\s+[^\s\"',;]+", re.I), rf"\1 {REDACTED}"),
    (
        re.compile(r"\b(AccountKey|SharedAccessKey|Password|Pwd)=[^;\s\"']+", re.I),
        rf"\1={REDACTED}",
    ),
)
# ``key: value`` and its kin. The value is taken whole, however it is written: quoted
# (either quote, kept around the mark), a repr such as ``Secret('***')``, or a bare word. A
# bare-word-only rule turned ``key=Secret('***')`` into ``key=[REDACTED]'***')`` and let
# ``key='abc'`` through.
_KEY_VALUE = re.compile(
    r"\b((?:api[-_]?|primary[-_]?|secondary[-_]?|endpoint[-_]?)?key|token|secret|password"
    r"|authorization)([\"']?\s*[:=]\s*)"
    r"(?![\"']?\[REDACTED\]|(?:Bearer|Basic|SharedAccessSignature) )"  # done already
    r"(\"[^\"\n]*\"|'[^'\n]*'|\w+\([^)\n]*\)|[^\s\"',;}]+)",
    re.I,
)
_MIN_KNOWN_SECRET = 8  # shorter "secrets" would redact ordinary words


def is_secret_key(name: str) -> bool:
    """Whether a field called ``name`` holds a secret, judged by the words of the name."""
    words = [w.lower() for w in _WORDS.findall(name)]
    joined = re.sub(r"[^a-z]", "", name.lower())
    return (
        bool(set(words) & SECRET_WORDS)
        or joined in SECRET_WORDS
        or (bool(words) and words[-1] in SECRET_LAST_WORDS)
    )


def redact_text(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with every secret-shaped part, and every ``known`` secret, replaced."""
    for secret in known:
        if len(secret) >= _MIN_KNOWN_SECRET:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return _KEY_VALUE.sub(_redact_value, text)


def _redact_value(found: re.Match[str]) -> str:
    value = found.group(3)
    quote = value[0] if value[0] in "\"'" and value[-1] == value[0] and len(value) > 1 else ""
    return f"{found.group(1)}{found.group(2)}{quote}{REDACTED}{quote}"


def redact(value: Any, known: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like value with secrets removed (see the module's two rules)."""
    secrets = tuple(known)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED
            if is_secret_key(str(k)) and v not in (None, "")
            else redact(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    return value
