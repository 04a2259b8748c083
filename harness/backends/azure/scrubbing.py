"""What a recorded Azure conversation must not keep, replaced before anything reaches disk.

A cassette is meant to be uploaded with the nightly report and committed to the repository, so
every secret is replaced by a stable placeholder when the exchange is recorded: bearer tokens
and endpoint keys (headers, listKeys bodies), SAS signatures and their ``skoid``/``sktid``
parameters, storage account keys, client secrets, subscription and tenant ids and user
principal names. The same original always gets the same placeholder, so the conversation stays
consistent (a subscription id in a URL and in a body become the same fake id) and a replay can
run with those fakes as its settings.

Three passes, each catching what the previous one cannot know: by name (headers, JSON keys,
query and form parameters), by shape (JWTs, e-mail-like names, ids after ``/subscriptions/``)
and by value (every secret seen so far, wherever it appears again, e.g. a key read from
listKeys and later sent in a scoring request's header).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SCRUBBED = "scrubbed"
SUBSCRIPTION_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
TENANT_PLACEHOLDER = "00000000-0000-4000-9000-000000000000"
OBJECT_PLACEHOLDER = "00000000-0000-4000-a000-000000000000"
_BASES = {"subscription": SUBSCRIPTION_PLACEHOLDER, "tenant": TENANT_PLACEHOLDER}
USER_PLACEHOLDER = "user@example.invalid"
TOKEN_PLACEHOLDER = "scrubbed-token"

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-ms-authorization-auxiliary",
        "x-ms-copy-source-authorization",
        "x-ms-encryption-key",
        "ocp-apim-subscription-key",
        "api-key",
        "cookie",
        "set-cookie",
    }
)
# JSON keys whose string value is a secret: primaryKey/secondaryKey (listKeys), accountKey,
# sasToken, accessToken, clientSecret, password, connectionString... A bare ``key`` is MLflow's
# metric and tag name (``{"key": "loss", "value": ...}``): only a datastore's secrets object
# (``secretsType``) has a secret under it.
_SECRET_KEY = re.compile(r"(.key|token|secret|password|connectionstring|signature)$", re.I)
_NOT_SECRET_KEY = re.compile(r"(tokentype|keytype|keyvault.*|authmode|keyname)$", re.I)
_ID_KEYS = {"subscriptionid": "subscription", "tenantid": "tenant", "usertenantid": "tenant"}
_ID_KEYS |= dict.fromkeys(("tid", "sktid"), "tenant")
_ID_KEYS |= dict.fromkeys(("oid", "objectid", "userobjectid", "principalid", "skoid"), "object")
_USER_KEYS = frozenset({"upn", "userprincipalname", "unique_name", "preferred_username", "email"})
_USER_KEYS |= {"username", "createdby", "lastmodifiedby", "useremail"}
# SAS and OAuth parameters in query strings, form bodies and URLs inside bodies.
_SECRET_PARAMS = "sig|skoid|sktid|client_secret|client_assertion|refresh_token|access_token"
_PARAM = re.compile(rf"(?i)(?<![A-Za-z0-9_])({_SECRET_PARAMS}|password)=([^&\s\"'<>]+)")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|sharedkey|basic)\s+([^\s\"',]+)")
_ACCOUNT_KEY = re.compile(r"(?i)(AccountKey|SharedAccessSignature|SharedAccessKey)=([^;\"'\s]+)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_SUBSCRIPTION_IN_PATH = re.compile(rf"(?i)(subscriptions/)({_GUID})")
_MIN_SECRET_LEN = 8


def _numbered(base: str, n: int) -> str:
    """The n-th placeholder of a kind; the first is ``base`` itself (a valid GUID)."""
    return base if n == 0 else f"{base[:-12]}{n:012d}"


def _fake_id(value: str, base: str, taken: set[str]) -> str:
    """A placeholder stays itself, so a scrubbed cassette scrubbed again is unchanged (the unit
    suite checks every committed cassette so); any other id gets the kind's first placeholder
    not taken yet. A recording holds real ids and a second pass only placeholders, so the two
    never compete for a number."""
    if value[:-12] == base[:-12] and value[-12:].isdigit():
        return value
    return next(p for n in range(len(taken) + 1) if (p := _numbered(base, n)) not in taken)


@dataclass
class Scrubber:
    """Scrubs one process's conversation; remembers every secret it replaced."""

    _known: dict[str, str] = field(default_factory=dict)  # original -> placeholder
    _ids: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> original -> fake
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def add_secrets(self, values: Iterable[str | None], placeholder: str = SCRUBBED) -> None:
        """Values known in advance (a client secret from the environment, the config's ids)."""
        for value in values:
            if value and len(value) >= _MIN_SECRET_LEN:
                with self._lock:
                    self._known.setdefault(value, placeholder)

    def add_id(self, kind: str, value: str | None) -> str | None:
        """A subscription, tenant or object id, mapped to its stable fake GUID (the first
        of a kind gets the kind's base placeholder, the next ones numbered)."""
        if not value:
            return value
        base = _BASES.get(kind, OBJECT_PLACEHOLDER)
        with self._lock:
            seen = self._ids.setdefault(kind, {})
            if value.lower() not in seen:
                seen[value.lower()] = _fake_id(value.lower(), base, set(seen.values()))
            fake = seen[value.lower()]
            self._known.setdefault(value, fake)
            self._known.setdefault(value.lower(), fake)
        return fake

    # -- the three passes over one string

    def text(self, value: str) -> str:
        """By shape, then by value: what any string of a request or response goes through."""
        value = _JWT.sub(self._token, value)
        value = _BEARER.sub(lambda m: f"{m.group(1)} {self._remember(m.group(2), SCRUBBED)}", value)
        value = _PARAM.sub(lambda m: f"{m.group(1)}={self._remember(m.group(2), SCRUBBED)}", value)
        value = _ACCOUNT_KEY.sub(
            lambda m: f"{m.group(1)}={self._remember(m.group(2), SCRUBBED)}", value
        )
        value = _SUBSCRIPTION_IN_PATH.sub(
            lambda m: f"{m.group(1)}{self.add_id('subscription', m.group(2))}", value
        )
        value = _EMAIL.sub(lambda m: self._remember(m.group(0), USER_PLACEHOLDER), value)
        return self.known(value)

    def known(self, value: str) -> str:
        """Every secret seen so far replaced wherever it appears (longest first)."""
        with self._lock:
            pairs = sorted(self._known.items(), key=lambda kv: -len(kv[0]))
        for secret, placeholder in pairs:
            if secret in value:
                value = value.replace(secret, placeholder)
        return value

    def _remember(self, secret: str, placeholder: str) -> str:
        """``placeholder`` for ``secret``, which is also replaced wherever it appears again
        when it looks like a secret (a word such as a metric name must not be: it would be
        replaced in every body)."""
        if placeholder == SCRUBBED and not _looks_secret(secret):
            return placeholder
        if len(secret) >= _MIN_SECRET_LEN and secret != placeholder:
            with self._lock:
                self._known.setdefault(secret, placeholder)
        return placeholder

    def _token(self, match: re.Match[str]) -> str:
        """A JWT: its tenant and user claims become known ids before the token is dropped."""
        claims = _jwt_claims(match.group(0))
        self.add_id("tenant", claims.get("tid"))
        for name in ("upn", "unique_name", "preferred_username", "email"):
            if isinstance(claims.get(name), str):
                self._remember(claims[name], USER_PLACEHOLDER)
        return self._remember(match.group(0), TOKEN_PLACEHOLDER)

    # -- structured parts

    def headers(self, headers: dict[str, list[str]]) -> dict[str, list[str]]:
        """Secret headers replaced by name (their values remembered); the rest by shape."""
        clean: dict[str, list[str]] = {}
        for name, values in headers.items():
            if name.lower() in SECRET_HEADERS:
                for value in values:
                    self.text(value)  # learn the token's claims and the raw value
                    self._remember(value.split(" ", 1)[-1], SCRUBBED)
                clean[name] = [self._secret_header(value) for value in values]
            else:
                clean[name] = [self.text(value) for value in values]
        return clean

    def _secret_header(self, value: str) -> str:
        scheme, _, rest = value.partition(" ")
        return f"{scheme} {TOKEN_PLACEHOLDER}" if rest else SCRUBBED

    def body(self, raw: bytes) -> bytes:
        """A JSON body scrubbed key by key; any other text by shape and value."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
        try:
            parsed = json.loads(text)
        except ValueError:
            return self.text(text).encode("utf-8")
        if not isinstance(parsed, (dict, list)):
            return self.text(text).encode("utf-8")
        return json.dumps(self._json(parsed, ""), separators=(",", ":")).encode("utf-8")

    def _json(self, value: Any, key: str) -> Any:
        if isinstance(value, dict) and "secretsType" in value:  # datastore listSecrets
            return {k: v if k == "secretsType" else self._secret(v) for k, v in value.items()}
        if isinstance(value, dict):
            return {k: self._json(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._json(v, key) for v in value]
        if not isinstance(value, str):
            return value
        return self._json_string(value, key.lower())

    def _json_string(self, value: str, key: str) -> str:
        if key in _ID_KEYS and re.fullmatch(_GUID, value):
            return self.add_id(_ID_KEYS[key], value) or value
        if key in _USER_KEYS and value:
            return self._remember(value, USER_PLACEHOLDER)
        if value and _SECRET_KEY.search(key) and not _NOT_SECRET_KEY.search(key):
            return str(self._secret(value))
        return self.text(value)

    def _secret(self, value: Any) -> Any:
        if not isinstance(value, str) or not value:
            return self._json(value, "")
        if _PARAM.search(value):  # a SAS token: its signature goes, its shape stays
            return self.text(value)
        self.text(value)  # a token's claims
        return self._remember(value, SCRUBBED)


def _looks_secret(value: str) -> bool:
    """Long, no spaces, letters and digits: a key, signature or token, not a word."""
    return (
        len(value) >= _MIN_SECRET_LEN
        and not any(c.isspace() for c in value)
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
    )


def _jwt_claims(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified (only to learn which ids it names); {} when unreadable."""
    import base64

    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
