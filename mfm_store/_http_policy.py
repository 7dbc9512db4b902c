"""What of an HTTP exchange may be recorded: credential lists, URL redaction, request fingerprints.

Pure functions without httpx, shared by the live transport (which records the fingerprint with
the answer) and by the typed helper (which recomputes it on resume and replay to compare), so
that both sides agree byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import attrs

from ._io_common import io_error
from .canonical import string_contains_secrets
from .errors import CODE_HTTP_REQUEST_INVALID, ErrorCategory, IoError

__all__ = [
    "DEFAULT_CREDENTIAL_HEADERS",
    "DEFAULT_CREDENTIAL_NAME_FRAGMENTS",
    "DEFAULT_CREDENTIAL_PARAMS",
    "DEFAULT_RECORDED_HEADERS",
    "CredentialPolicy",
    "PreparedRequest",
    "prepare_request",
]

DEFAULT_CREDENTIAL_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "set-cookie2",
    "x-api-key", "api-key", "apikey", "x-auth-token", "x-access-token", "x-csrf-token",
    "x-xsrf-token", "x-amz-security-token", "x-goog-api-key", "private-token",
    "x-vault-token", "proxy-authenticate", "www-authenticate",
})
DEFAULT_CREDENTIAL_PARAMS = frozenset({
    "api_key", "apikey", "api-key", "key", "token", "access_token", "refresh_token",
    "id_token", "auth", "password", "passwd", "pwd", "secret", "client_secret", "signature",
    "sig", "session", "sessionid", "code", "x-amz-signature", "x-amz-credential",
    "x-amz-security-token",
})
# A header or parameter whose lowercased name contains one of these is a credential too.
DEFAULT_CREDENTIAL_NAME_FRAGMENTS = ("auth", "token", "secret", "password", "passwd",
                                     "api-key", "api_key", "apikey", "cookie", "session",
                                     "signature", "credential")
DEFAULT_RECORDED_HEADERS = ("content-type", "content-language", "content-disposition", "etag",
                            "last-modified", "location", "link", "retry-after")
# Headers the transport sets itself: never part of what identifies a request.
_TRANSPORT_HEADERS = frozenset({"idempotency-key", "content-length", "host", "user-agent",
                                "accept-encoding", "connection"})
_BODY_FIELDS = ("json", "text", "body_b64")
_REQUEST_FIELDS = frozenset({"method", "url", "headers", "params", *_BODY_FIELDS})
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                                 allow_nan=False)


def _lower_set(names: Iterable[str]) -> frozenset[str]:
    return frozenset(n.lower() for n in names)


def _lower_tuple(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(n.lower() for n in names)


@attrs.frozen(kw_only=True)
class CredentialPolicy:
    """Which headers and query parameters are credentials, and which response headers are kept.

    A header (parameter) is a credential if its lowercased name is in ``headers``
    (``params``), contains one of ``name_fragments``, or if its name or value is flagged by the
    secret policy (``string_contains_secrets``). Credentials are sent but never recorded:
    they are left out of the request fingerprint, the recorded URL and the recorded response
    headers. ``recorded_headers`` lists the response headers kept in the recorded answer (a
    credential among them is still dropped). Use the same policy for the factory and the
    helper, or the fingerprints will not match.
    """

    headers: frozenset[str] = attrs.field(default=DEFAULT_CREDENTIAL_HEADERS,
                                          converter=_lower_set)
    params: frozenset[str] = attrs.field(default=DEFAULT_CREDENTIAL_PARAMS,
                                         converter=_lower_set)
    name_fragments: tuple[str, ...] = attrs.field(
        default=DEFAULT_CREDENTIAL_NAME_FRAGMENTS,
        converter=_lower_tuple)
    recorded_headers: tuple[str, ...] = attrs.field(default=DEFAULT_RECORDED_HEADERS,
                                                    converter=_lower_tuple)

    def _flagged(self, name: str, value: str, exact: frozenset[str]) -> bool:
        low = name.lower()
        return (low in exact or any(f in low for f in self.name_fragments)
                or string_contains_secrets(name) or string_contains_secrets(value))

    def is_credential_header(self, name: str, value: str) -> bool:
        return self._flagged(name, value, self.headers)

    def is_credential_param(self, name: str, value: str) -> bool:
        return self._flagged(name, value, self.params)

    def recorded_response_headers(self, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
        """The kept response headers, lowercased names, repeated values joined by ``", "``."""
        out: dict[str, str] = {}
        for name, value in pairs:
            low = name.lower()
            if low not in self.recorded_headers or self.is_credential_header(low, value):
                continue
            out[low] = f"{out[low]}, {value}" if low in out else value
        return out

    def redact_url(self, url: str) -> str:
        """``url`` without user info and credential query parameters, the query sorted."""
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                 if not self.is_credential_param(k, v)]
        return urlunsplit((parts.scheme, netloc, parts.path,
                           urlencode(sorted(query), quote_via=quote), ""))


DEFAULT_POLICY = CredentialPolicy()


def _invalid(message: str) -> IoError:
    return io_error(CODE_HTTP_REQUEST_INVALID, ErrorCategory.PARSING_INPUT, message)


def _param_pairs(params: Any) -> list[tuple[str, str]]:
    if params is None:
        return []
    if not isinstance(params, Mapping):
        raise _invalid("http request: params must be an object")
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, str | int):
                raise _invalid(f"http request: parameter {name!r} must be a string or an "
                               "integer (or a list of them)")
            pairs.append((str(name), str(v)))
    return pairs


def _header_pairs(headers: Any) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise _invalid("http request: headers must be an object of strings")
    return [(k, v) for k, v in headers.items()]


@attrs.frozen(kw_only=True)
class PreparedRequest:
    """A request as it is sent: method, URL with its query, headers, body bytes."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    body_kind: str | None
    fingerprint: dict[str, Any]


def _body(request: Mapping[str, Any]) -> tuple[bytes | None, str | None, str | None]:
    """``(bytes, kind, default content type)`` of the one body field given, if any."""
    given = [f for f in _BODY_FIELDS if f in request]
    if len(given) > 1:
        raise _invalid("http request: give at most one of json, text, body_b64")
    if not given:
        return None, None, None
    kind = given[0]
    value = request[kind]
    if kind == "json":
        try:
            return _JSON_ENCODER.encode(value).encode("utf-8"), kind, "application/json"
        except (TypeError, ValueError) as exc:
            raise _invalid("http request: json body is not a JSON value") from exc
    if not isinstance(value, str):
        raise _invalid(f"http request: {kind} must be a string")
    if kind == "text":
        return value.encode("utf-8"), kind, "text/plain; charset=utf-8"
    try:
        return base64.b64decode(value, validate=True), kind, "application/octet-stream"
    except ValueError as exc:
        raise _invalid("http request: body_b64 is not valid base64") from exc


def prepare_request(request: Any, *, method: str | None = None,
                    policy: CredentialPolicy = DEFAULT_POLICY) -> PreparedRequest:
    """Validate an ``http.*`` request object and compute what is sent and its fingerprint.

    ``method`` is imposed by a shortcut namespace (``http.get``). The fingerprint holds the
    method, the URL as given (relative URLs stay relative) with its query merged with
    ``params`` and sorted, the request's own headers and the body's kind, size and SHA-256,
    never a credential (see :class:`CredentialPolicy`). JSON bodies are sent as compact JSON
    with sorted keys, so the hash is the hash of the bytes sent. Raises ``IoError``
    ``http_request_invalid``.
    """
    if not isinstance(request, Mapping):
        raise _invalid("http request must be an object")
    unknown = sorted(set(request) - _REQUEST_FIELDS)
    if unknown:
        raise _invalid(f"http request: unknown field(s) {unknown}")
    given = request.get("method")
    if given is not None and not isinstance(given, str):
        raise _invalid("http request: method must be a string")
    if method is not None and given is not None and given.upper() != method:
        raise _invalid(f"http request: method {given!r} given to the {method} shortcut")
    verb = (method or given or "GET").upper()
    if not verb.isalpha():
        raise _invalid("http request: method must be letters only")
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise _invalid("http request: url must be a non-empty string")
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + _param_pairs(request.get("params"))
    full_url = urlunsplit((parts.scheme, parts.netloc, parts.path,
                           urlencode(query, quote_via=quote), ""))
    headers = _header_pairs(request.get("headers"))
    body, kind, content_type = _body(request)
    if content_type is not None and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", content_type))
    kept_headers = {k.lower(): v for k, v in headers
                    if k.lower() not in _TRANSPORT_HEADERS
                    and not policy.is_credential_header(k, v)}
    fingerprint: dict[str, Any] = {
        "method": verb,
        "url": policy.redact_url(full_url),
        "headers": dict(sorted(kept_headers.items())),
        "body": None if body is None else {
            "kind": kind, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()},
    }
    return PreparedRequest(method=verb, url=full_url, headers=tuple(headers), body=body,
                           body_kind=kind, fingerprint=fingerprint)


def fingerprint_differences(recorded: Any, current: Mapping[str, Any]) -> list[str]:
    """Readable ``field: recorded X, now Y`` lines for each fingerprint field that differs."""
    if not isinstance(recorded, Mapping):
        return ["request: no fingerprint recorded"]
    out = []
    for field in ("method", "url", "headers", "body"):
        if recorded.get(field) != current.get(field):
            out.append(f"{field}: recorded {_show(recorded.get(field))}, "
                       f"now {_show(current.get(field))}")
    return out


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
