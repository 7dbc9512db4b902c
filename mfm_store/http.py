"""HTTP for state handlers (extra ``http``): every answer recorded once, replayed offline.

:class:`HttpTransportFactory` is a ``LiveIoTransportFactory`` for the namespaces under its group
(``http`` by default): ``http.request`` (any method) and the shortcuts ``http.get``,
``http.post``, ``http.put``, ``http.patch``, ``http.delete``, ``http.head``. A request is a JSON
object ``{"method", "url", "headers", "params", and at most one of "json" / "text" /
"body_b64"}``. Handlers use :class:`Http` (``await Http(io).get(url, key="quote")``), which
builds the call, checks the recorded request against the one being made, and gives an
:class:`HttpResponse` (``.status``, ``.headers``, ``.text``, ``.content``, ``.json()``).

The recorded answer (the fact payload) is canonical JSON::

    {"http": 1, "status": 200, "url": "<final URL, redacted>",
     "headers": {"content-type": "..."},                  # CredentialPolicy.recorded_headers
     "body": {"text": "<the body, verbatim>", "encoding": "utf-8"}
           | {"artifact": "<sha-256>", "size": 12345},     # binary, or above inline_limit
     "request": {"method", "url", "headers", "body": {"kind", "size", "sha256"} | null}}

Text and JSON bodies stay text (a JSON answer's floats survive; ``.json()`` parses the same text
the same way every time). Other bodies, and text bodies above ``inline_limit`` bytes, are
stored as artifacts, hashed as they arrive. httpx is imported only when the first live
transport is built: replay needs neither httpx nor a network.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json as _json
import math
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urljoin

import attrs

from ._http_policy import (
    DEFAULT_CREDENTIAL_HEADERS,
    DEFAULT_CREDENTIAL_NAME_FRAGMENTS,
    DEFAULT_CREDENTIAL_PARAMS,
    DEFAULT_POLICY,
    DEFAULT_RECORDED_HEADERS,
    CredentialPolicy,
    PreparedRequest,
    fingerprint_differences,
    prepare_request,
)
from ._io_common import JsonValue, io_error
from .canonical import artifact_id_for_bytes, json_contains_secrets, string_contains_secrets
from .errors import (
    CODE_FACT_PAYLOAD_PUT_FAILED,
    CODE_FACT_REQUEST_MISMATCH,
    CODE_HTTP_ANSWER_INVALID,
    CODE_HTTP_BODY_TOO_LARGE,
    CODE_HTTP_CLIENT_ERROR,
    CODE_HTTP_REQUEST_INVALID,
    CODE_HTTP_SERVER_ERROR,
    CODE_SECRETS_DETECTED,
    CODE_TRANSPORT,
    ErrorCategory,
    ErrorInfo,
    IoError,
    RateLimitedError,
    StorageError,
    TransportError,
)
from .ids import ArtifactId, FactKey
from .live_io import IoAnswer, IoCall, IoProvider, IoResult, LiveIoEnv
from .stores import ArtifactKind, ArtifactStore

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BODY_ARTIFACT_KIND",
    "DEFAULT_CREDENTIAL_HEADERS",
    "DEFAULT_CREDENTIAL_NAME_FRAGMENTS",
    "DEFAULT_CREDENTIAL_PARAMS",
    "DEFAULT_INLINE_LIMIT",
    "DEFAULT_MAX_BODY",
    "DEFAULT_RECORDED_HEADERS",
    "CredentialPolicy",
    "FactRequestMismatchError",
    "Http",
    "HttpRateLimitedError",
    "HttpRequest",
    "HttpResponse",
    "HttpTransport",
    "HttpTransportFactory",
    "answer_artifact_refs",
    "idempotency_key",
]

DEFAULT_INLINE_LIMIT: Final = 64 * 1024
"""Text bodies up to this many bytes are recorded inline; larger ones go to an artifact."""
DEFAULT_MAX_BODY: Final = 64 * 1024 * 1024
"""Bodies above this many bytes are refused (``http_body_too_large``)."""
BODY_ARTIFACT_KIND: Final = ArtifactKind.other("HttpBody")
FORMAT_VERSION: Final = 1
_DEFAULT_TIMEOUT = 30.0

_SHORTCUTS = {"get": "GET", "post": "POST", "put": "PUT", "patch": "PATCH",
              "delete": "DELETE", "head": "HEAD"}
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded", "application/x-ndjson")
_SECRET_BODY_HELP = ("(policy forbids persisting secrets): fetch tokens with a call without "
                     "fact_key (it is not recorded) and keep them out of the context")


class FactRequestMismatchError(IoError):
    """A fact key is bound to the answer of another request (code ``fact_request_mismatch``).

    ``key`` names the fact, ``differences`` lists ``field: recorded X, now Y`` for each part of
    the fingerprint that differs (method, url, headers, body); never a credential.
    """

    default_code = CODE_FACT_REQUEST_MISMATCH
    default_category = ErrorCategory.PARSING_INPUT

    def __init__(self, key: FactKey, differences: list[str]) -> None:
        super().__init__(f"fact {key!r} holds the answer to another request: "
                         + "; ".join(differences))
        self.key = key
        self.differences = differences


class HttpRateLimitedError(RateLimitedError):
    """429, or 503 with ``Retry-After``: retryable; ``retry_after`` is the server's delay in
    seconds (``None`` if it gave none), also in ``info.details["retry_after_ms"]``."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        ms = None if retry_after is None else math.ceil(retry_after * 1000)
        super().__init__(message, retryable=True, details={"retry_after_ms": ms})
        self.retry_after = retry_after


def idempotency_key(run_id: object, fact_key: FactKey) -> str:
    """The ``Idempotency-Key`` sent with a recorded non-idempotent request: 32 hex digits of
    SHA-256 over the run id and the fact key, the same on every retry, resume and process."""
    return hashlib.sha256(f"mfm-idempotency|{run_id}|{fact_key}".encode()).hexdigest()[:32]


def answer_artifact_refs(payload: bytes) -> list[ArtifactId]:
    """The artifacts a fact payload refers to if it is a recorded HTTP answer (its body
    artifact), else ``[]``; cheap on other payloads (one prefix test, no parse). The store
    does not need it: the transport declares the body artifact with the fact
    (:class:`~mfm_store.live_io.IoAnswer`, stored as the event's ``meta.refs``)."""
    if not payload.startswith(b'{"body":{"artifact":"'):
        return []
    try:
        answer = _json.loads(payload)
        ref = answer["body"]["artifact"]
    except (ValueError, KeyError, TypeError):
        return []
    ok = answer.get("http") == FORMAT_VERSION and isinstance(ref, str)
    return [ArtifactId(ref)] if ok else []


def _answer_invalid(message: str) -> IoError:
    return io_error(CODE_HTTP_ANSWER_INVALID, ErrorCategory.PARSING_INPUT, message)


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"').lower()
    return None


def _is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return (mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith("+json")
            or mime.endswith("+xml"))


def _decode_exact(data: bytes, charset: str) -> str | None:
    """The text of ``data`` if it decodes and encodes back to exactly ``data``."""
    try:
        text = data.decode(charset)
        return text if text.encode(charset) == data else None
    except (LookupError, UnicodeError):
        return None


@attrs.frozen(kw_only=True)
class HttpResponse:
    """An HTTP answer as recorded: the same value live, on resume and on replay.

    ``headers`` are the recorded ones (lowercased names); ``url`` is the final URL after
    redirects, without credentials; ``request`` is the recorded fingerprint; ``payload_id``
    the fact payload's id (``None`` for a call without fact key).
    """

    status: int
    url: str
    headers: Mapping[str, str]
    content: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    encoding: str | None
    request: Mapping[str, Any]
    payload_id: ArtifactId | None = None

    @property
    def text(self) -> str:
        """The body decoded with its charset (UTF-8 by default; invalid bytes replaced)."""
        return self.content.decode(self.encoding or "utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (floats as Python floats: the same text, the same value)."""
        return _json.loads(self.text)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    @classmethod
    async def from_answer(cls, answer: JsonValue, artifacts: ArtifactStore | None,
                          payload_id: ArtifactId | None = None) -> HttpResponse:
        """Build from a recorded answer; an artifact body is read from ``artifacts`` and its
        SHA-256 checked. Raises ``IoError`` ``http_answer_invalid`` for a malformed answer."""
        if not isinstance(answer, Mapping) or answer.get("http") != FORMAT_VERSION:
            raise _answer_invalid("not a recorded http answer")
        status, url, headers, body = (answer.get("status"), answer.get("url"),
                                      answer.get("headers"), answer.get("body"))
        if (not isinstance(status, int) or not isinstance(url, str)
                or not isinstance(headers, Mapping) or not isinstance(body, Mapping)):
            raise _answer_invalid("recorded http answer is malformed")
        encoding = body.get("encoding") or _charset(headers.get("content-type"))
        content = await _body_bytes(body, artifacts)
        return cls(status=status, url=url, headers=dict(headers), content=content,
                   encoding=encoding, request=answer.get("request") or {},
                   payload_id=payload_id)


async def _body_bytes(body: Mapping[str, Any], artifacts: ArtifactStore | None) -> bytes:
    if isinstance(body.get("text"), str):
        return str(body["text"]).encode(body.get("encoding") or "utf-8")
    if isinstance(body.get("b64"), str):
        return base64.b64decode(body["b64"])
    ref, size = body.get("artifact"), body.get("size")
    if not isinstance(ref, str) or not isinstance(size, int):
        raise _answer_invalid("recorded http answer has a malformed body")
    if artifacts is None:
        raise _answer_invalid("the http answer's body is an artifact and no artifact store "
                              "was given (Http(io, artifacts=store))")
    try:
        data = await artifacts.get(ArtifactId(ref))
    except StorageError as exc:
        raise io_error(CODE_HTTP_ANSWER_INVALID, ErrorCategory.STORAGE,
                       f"http answer body artifact {ref} cannot be read") from exc
    if len(data) != size or artifact_id_for_bytes(data) != ref:
        raise _answer_invalid(f"http answer body artifact {ref} does not match its record")
    return data


@attrs.frozen(kw_only=True)
class HttpRequest:
    """A request, as handlers describe it. ``json=None`` means no JSON body; give at most one
    of ``json``, ``text``, ``content``."""

    method: str = "GET"
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    params: Mapping[str, Any] = attrs.field(factory=dict)
    json: Any = None
    text: str | None = None
    content: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        """The request object of an ``http.request`` call."""
        out: dict[str, Any] = {"method": self.method.upper(), "url": self.url}
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.params:
            out["params"] = dict(self.params)
        if self.json is not None:
            out["json"] = self.json
        if self.text is not None:
            out["text"] = self.text
        if self.content is not None:
            out["body_b64"] = base64.b64encode(self.content).decode("ascii")
        return out


def _artifacts_of(io: object) -> ArtifactStore | None:
    """The artifact store an IO provider reads facts from: its public ``artifacts`` property
    (LiveIo, ReplayIo, the engine's wrapper); ``None`` if it has none."""
    return getattr(io, "artifacts", None)


class Http:
    """HTTP calls from a state handler through its ``io`` (live, resumed or replayed).

    ``await Http(io).get(url, key="quote")`` sends ``http.request`` with fact key ``quote``:
    the first time it is asked and recorded, afterwards (retry, resume, another process,
    replay) the recorded answer is served. Each recorded answer holds its request's
    fingerprint; when the fingerprint of the request being made differs, the call fails with
    :class:`FactRequestMismatchError` (``fact_request_mismatch``, naming the key and what
    differs) instead of answering another question. The check lives here, so that live and
    replayed runs go through it alike; a raw ``io.call`` is not checked.

    ``policy`` must be the factory's (the default matches the default). ``artifacts`` is where
    artifact bodies are read; by default the store ``io`` reads its facts from.
    """

    def __init__(self, io: IoProvider, *, namespace_group: str = "http",
                 policy: CredentialPolicy = DEFAULT_POLICY,
                 artifacts: ArtifactStore | None = None) -> None:
        self._io = io
        self._namespace = f"{namespace_group}.request"
        self._policy = policy
        self._artifacts = artifacts

    async def send(self, request: HttpRequest, *, key: FactKey | None = None) -> HttpResponse:
        """Send ``request`` (recorded under ``key`` if given). Raises ``http_request_invalid``
        before anything happens for a malformed request, ``fact_request_mismatch``, and the
        transport's errors (see :class:`HttpTransportFactory`)."""
        body = request.to_json()
        prepared = prepare_request(body, policy=self._policy)
        result = await self._io.call(IoCall(self._namespace, body, key))
        return await self._response(result, prepared, key)

    async def _response(self, result: IoResult, prepared: PreparedRequest,
                        key: FactKey | None) -> HttpResponse:
        answer = result.response
        if key is not None:
            recorded = answer.get("request") if isinstance(answer, Mapping) else None
            differences = fingerprint_differences(recorded, prepared.fingerprint)
            if differences:
                raise FactRequestMismatchError(key, differences)
        artifacts = self._artifacts or _artifacts_of(self._io)
        return await HttpResponse.from_answer(answer, artifacts, result.recorded_payload_id)

    async def request(self, method: str, url: str, *, key: FactKey | None = None,
                      headers: Mapping[str, str] | None = None,
                      params: Mapping[str, Any] | None = None, json: Any = None,
                      text: str | None = None, content: bytes | None = None) -> HttpResponse:
        return await self.send(HttpRequest(method=method, url=url, headers=headers or {},
                                           params=params or {}, json=json, text=text,
                                           content=content), key=key)

    async def get(self, url: str, *, key: FactKey | None = None,
                  headers: Mapping[str, str] | None = None,
                  params: Mapping[str, Any] | None = None) -> HttpResponse:
        return await self.request("GET", url, key=key, headers=headers, params=params)

    async def post(self, url: str, *, key: FactKey | None = None,
                   headers: Mapping[str, str] | None = None,
                   params: Mapping[str, Any] | None = None, json: Any = None,
                   text: str | None = None, content: bytes | None = None) -> HttpResponse:
        return await self.request("POST", url, key=key, headers=headers, params=params,
                                  json=json, text=text, content=content)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpTransportFactory:
    """Builds :class:`HttpTransport` s for the namespaces under ``namespace_group``.

    ``client`` is an ``httpx.AsyncClient`` to use (the caller closes it); without one, the
    factory creates a client on first use and closes it in :meth:`aclose` (also an async
    context manager), so connections are reused across calls and attempts. ``base_url`` is
    joined to relative URLs (the fingerprint keeps the URL as the call gave it). ``headers``
    are sent with every request (a header of the same name in the call wins) and never
    recorded (a place for ``Authorization``).

    ``timeout`` (seconds) applies to connect, read, write and pool waits; ``None`` keeps the
    client's own (30 s for the client the factory creates, which follows at most
    ``max_redirects`` redirects). Bodies above
    ``max_body`` bytes are refused (``http_body_too_large``, not retryable, nothing stored);
    text bodies (``text/*``, JSON, XML, ``+json``/``+xml`` types) up to ``inline_limit``
    bytes that decode exactly with their charset are recorded inline as text; any other body
    is stored as a ``HttpBody`` artifact (SHA-256 computed as it arrives) and referenced.

    Errors: connection failures and timeouts → ``TransportError`` (``io_transport``,
    retryable); 429, and 503 with ``Retry-After`` → :class:`HttpRateLimitedError`
    (``io_rate_limited``, retryable, ``retry_after`` seconds); other 5xx →
    ``TransportError`` (``http_server_error``, retryable) unless ``retry_5xx=False``, then
    they are recorded as answers; 4xx are recorded answers unless ``record_4xx=False``
    (``http_client_error``, not retryable). Redirects are followed (``follow_redirects``) and
    the final answer is recorded with the final URL. A recorded answer whose text body, URL or
    kept headers hold a secret is refused (``secrets_detected``) before anything is stored.
    POST, PATCH and DELETE calls with a fact key carry ``Idempotency-Key:``
    :func:`idempotency_key` ``(run_id, fact_key)`` unless the request sets one.
    """

    def __init__(self, namespace_group: str = "http", *,
                 client: httpx.AsyncClient | None = None, base_url: str | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 max_body: int = DEFAULT_MAX_BODY, inline_limit: int = DEFAULT_INLINE_LIMIT,
                 policy: CredentialPolicy = DEFAULT_POLICY, follow_redirects: bool = True,
                 max_redirects: int = 20, record_4xx: bool = True, retry_5xx: bool = True,
                 idempotency_header: str = "Idempotency-Key",
                 idempotent_unsafe_methods: tuple[str, ...] = ("POST", "PATCH", "DELETE"),
                 ) -> None:
        if not 0 <= inline_limit <= max_body:
            raise ValueError("need 0 <= inline_limit <= max_body")
        self._group = namespace_group
        self._client = client
        self._owns_client = client is None
        self.base_url = base_url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.max_body = max_body
        self.inline_limit = inline_limit
        self.policy = policy
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.record_4xx = record_4xx
        self.retry_5xx = retry_5xx
        self.idempotency_header = idempotency_header
        self.unsafe_methods = frozenset(m.upper() for m in idempotent_unsafe_methods)
        self._closed = False

    @property
    def namespace_group(self) -> str:
        return self._group

    def make(self, env: LiveIoEnv) -> HttpTransport:
        return HttpTransport(self, env)

    def client(self) -> httpx.AsyncClient:
        """The client in use (created on first call)."""
        if self._closed:
            raise io_error(CODE_TRANSPORT, ErrorCategory.OFF_CHAIN,
                           "http transport factory is closed")
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                timeout=_DEFAULT_TIMEOUT if self.timeout is None else self.timeout,
                max_redirects=self.max_redirects)
        return self._client

    async def aclose(self) -> None:
        """Close the client this factory created (idempotent)."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            await client.aclose()

    async def __aenter__(self) -> HttpTransportFactory:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


class HttpTransport:
    """One attempt's transport (see :class:`HttpTransportFactory` for the contract)."""

    def __init__(self, factory: HttpTransportFactory, env: LiveIoEnv) -> None:
        self._f = factory
        self._env = env

    async def call(self, call: IoCall) -> JsonValue | IoAnswer:
        group = self._f.namespace_group
        verb = call.namespace[len(group) + 1:] if call.namespace != group else "request"
        if verb != "request" and verb not in _SHORTCUTS:
            raise io_error(CODE_HTTP_REQUEST_INVALID, ErrorCategory.PARSING_INPUT,
                           f"unknown http call {call.namespace!r}")
        prepared = prepare_request(call.request, method=_SHORTCUTS.get(verb),
                                   policy=self._f.policy)
        return await self.perform(prepared, call.fact_key)

    async def perform(self, prepared: PreparedRequest,
                      key: FactKey | None) -> JsonValue | IoAnswer:
        """Send ``prepared`` and build the answer to record; an artifact body is stored and
        declared (an :class:`IoAnswer` whose ``refs`` name it), so the store keeps it with
        the fact."""
        import httpx

        f = self._f
        url = urljoin(f.base_url, prepared.url) if f.base_url else prepared.url
        shown = _Shown(prepared.method, url, f.policy)
        own = {k.lower() for k, _ in prepared.headers}
        headers = [*((k, v) for k, v in f.headers.items() if k.lower() not in own),
                   *prepared.headers]
        extra: dict[str, Any] = {} if f.timeout is None else {"timeout": f.timeout}
        if (key is not None and prepared.method in f.unsafe_methods
                and not any(k.lower() == f.idempotency_header.lower() for k, _ in headers)):
            headers.append((f.idempotency_header, idempotency_key(self._env.run_id, key)))
        try:
            async with f.client().stream(
                    prepared.method, url, headers=headers, content=prepared.body,
                    follow_redirects=f.follow_redirects, **extra) as response:
                self._check_status(response, shown)
                data = await self._read(response, shown)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise io_error(CODE_HTTP_REQUEST_INVALID, ErrorCategory.PARSING_INPUT,
                           f"{shown}: invalid URL ({type(exc).__name__})") from exc
        except httpx.TooManyRedirects as exc:
            raise TransportError(f"{shown}: too many redirects") from exc
        except httpx.TimeoutException as exc:
            raise TransportError(f"{shown}: timed out ({type(exc).__name__})",
                                 retryable=True) from exc
        except httpx.TransportError as exc:
            raise TransportError(f"{shown}: {type(exc).__name__}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"{shown}: {type(exc).__name__}") from exc
        return await self._answer(response, data, prepared, key)

    def _check_status(self, response: httpx.Response, shown: _Shown) -> None:
        status = response.status_code
        retry_after = response.headers.get("retry-after")
        if status == 429 or (status == 503 and retry_after is not None):
            delay = _retry_after(retry_after)
            raise HttpRateLimitedError(f"{shown}: {status}, retry after {delay} s", delay)
        if status >= 500 and self._f.retry_5xx:
            raise TransportError(f"{shown}: server error {status}",
                                 code=CODE_HTTP_SERVER_ERROR, retryable=True)
        if 400 <= status < 500 and not self._f.record_4xx:
            raise TransportError(f"{shown}: client error {status}",
                                 code=CODE_HTTP_CLIENT_ERROR)

    async def _read(self, response: httpx.Response, shown: _Shown) -> bytes:
        limit = self._f.max_body
        declared = response.headers.get("content-length")
        if (declared is not None and declared.isdigit() and int(declared) > limit
                and "content-encoding" not in response.headers):
            raise _too_large(shown, limit)
        buf = bytearray()
        async for chunk in response.aiter_bytes():
            buf += chunk
            if len(buf) > limit:
                raise _too_large(shown, limit)
        return bytes(buf)

    async def _answer(self, response: httpx.Response, data: bytes, prepared: PreparedRequest,
                      key: FactKey | None) -> JsonValue | IoAnswer:
        f = self._f
        content_type = response.headers.get("content-type")
        charset = _charset(content_type) or "utf-8"
        text = _decode_exact(data, charset) if _is_text(content_type) else None
        answer: dict[str, Any] = {
            "http": FORMAT_VERSION,
            "status": response.status_code,
            "url": f.policy.redact_url(str(response.url)),
            "headers": f.policy.recorded_response_headers(response.headers.multi_items()),
            "request": prepared.fingerprint,
        }
        if key is None:  # not recorded: nothing checked, nothing stored
            answer["body"] = ({"text": text, "encoding": charset} if text is not None
                              else {"b64": base64.b64encode(data).decode("ascii")})
            return answer
        where = [part for part in ("url", "headers", "request") if json_contains_secrets(
            answer[part])]
        if _is_text(content_type) and string_contains_secrets(
                text if text is not None else data.decode(charset, errors="replace")):
            where.insert(0, "body")
        if where:
            raise io_error(CODE_SECRETS_DETECTED, ErrorCategory.UNKNOWN,
                           f"http answer for fact {key!r} not recorded, a secret is in its "
                           f"{' and '.join(where)} {_SECRET_BODY_HELP}")
        if text is not None and len(data) <= f.inline_limit:
            answer["body"] = {"text": text, "encoding": charset}
            return answer
        body_id = await self._put(data)
        answer["body"] = {"artifact": body_id, "size": len(data)}
        return IoAnswer(answer, (ArtifactId(body_id),))

    async def _put(self, data: bytes) -> str:
        try:
            return await self._env.stores.put(BODY_ARTIFACT_KIND, data)
        except StorageError as exc:
            raise IoError("failed to store http body", info=ErrorInfo(
                CODE_FACT_PAYLOAD_PUT_FAILED, ErrorCategory.STORAGE, False,
                "failed to store http body")) from exc


class _Shown:
    """How errors name a request (the URL redacted), built only if an error needs it."""

    __slots__ = ("_method", "_policy", "_url")

    def __init__(self, method: str, url: str, policy: CredentialPolicy) -> None:
        self._method, self._url, self._policy = method, url, policy

    def __str__(self) -> str:
        return f"http {self._method} {self._policy.redact_url(self._url)}"


def _too_large(shown: _Shown, limit: int) -> IoError:
    return io_error(CODE_HTTP_BODY_TOO_LARGE, ErrorCategory.OFF_CHAIN,
                    f"{shown}: body larger than max_body ({limit} bytes); raise "
                    "HttpTransportFactory(max_body=...) to accept it")


