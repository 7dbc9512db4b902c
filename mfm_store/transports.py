"""Transports by namespace (SPEC §6): the registry of transport factories, the router that
sends each call to the factory with the longest matching namespace group, and the default
factory whose every call fails (``io_unimplemented``)."""

from __future__ import annotations

from collections.abc import Iterable

from ._io_common import JsonValue, io_error
from .errors import (
    CODE_IO_UNIMPLEMENTED,
    CODE_IO_UNKNOWN_NAMESPACE,
    ErrorCategory,
    TransportRegistryError,
)
from .io_types import IoAnswer, IoCall, LiveIoEnv, LiveIoTransport, LiveIoTransportFactory

__all__ = [
    "RouterLiveIoTransportFactory",
    "TransportRegistry",
    "TransportRegistryError",
    "UnimplementedLiveIoTransportFactory",
]


class _UnimplementedTransport:
    async def call(self, call: IoCall) -> JsonValue:
        raise io_error(CODE_IO_UNIMPLEMENTED, ErrorCategory.UNKNOWN,
                       "live io transport is not configured")


class UnimplementedLiveIoTransportFactory:
    """The default factory: every call fails with ``IoError`` code ``io_unimplemented``."""

    namespace_group = "unimplemented"

    def make(self, env: LiveIoEnv) -> LiveIoTransport:
        return _UnimplementedTransport()


class TransportRegistry:
    """Transport factories by namespace group (the group is compared after ``strip()``)."""

    def __init__(self, factories: Iterable[LiveIoTransportFactory] = ()) -> None:
        self._factories: dict[str, LiveIoTransportFactory] = {}
        for factory in factories:
            self.register(factory)

    def register(self, factory: LiveIoTransportFactory) -> None:
        """Raises :class:`TransportRegistryError` for an empty or already registered group."""
        group = factory.namespace_group.strip()
        if not group:
            raise TransportRegistryError("transport namespace group must not be empty")
        if group in self._factories:
            raise TransportRegistryError(f"duplicate transport namespace group: {group}")
        self._factories[group] = factory

    def resolve(self, group: str) -> LiveIoTransportFactory | None:
        """The factory registered for exactly ``group``."""
        return self._factories.get(group)

    def all(self) -> dict[str, LiveIoTransportFactory]:
        return dict(self._factories)


def _route(namespace: str, groups: Iterable[str]) -> str | None:
    """The longest group ``g`` with ``namespace == g`` or ``namespace`` under ``g + "."``."""
    best: str | None = None
    for g in groups:
        if (namespace == g or namespace.startswith(g + ".")) and (
                best is None or len(g) > len(best)):
            best = g
    return best


class _RouterTransport:
    def __init__(self, routes: dict[str, LiveIoTransport]) -> None:
        self._routes = routes

    async def call(self, call: IoCall) -> JsonValue | IoAnswer:
        group = _route(call.namespace, self._routes)
        if group is None:
            # The request is never echoed: it may carry credentials.
            raise io_error(CODE_IO_UNKNOWN_NAMESPACE, ErrorCategory.UNKNOWN,
                           "unknown io namespace")
        return await self._routes[group].call(call)


class RouterLiveIoTransportFactory:
    """Routes each call to the factory with the longest matching namespace group.

    Group ``g`` matches namespace ``ns`` iff ``ns == g`` or ``ns.startswith(g + ".")``; with
    no match the call fails with ``IoError`` code ``io_unknown_namespace``. ``make`` builds one
    transport per route for the attempt. Construction raises :class:`TransportRegistryError`
    for an empty or duplicate group.
    """

    namespace_group = "router"

    def __init__(self, factories: Iterable[LiveIoTransportFactory] = ()) -> None:
        self._registry = TransportRegistry(factories)

    @classmethod
    def from_registry(cls, registry: TransportRegistry) -> RouterLiveIoTransportFactory:
        return cls(registry.all().values())

    def make(self, env: LiveIoEnv) -> LiveIoTransport:
        return _RouterTransport({g: f.make(env) for g, f in self._registry.all().items()})
