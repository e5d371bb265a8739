"""The exceptions of ready_signal: one per error kind of the Rust crate (`ready_signal::Error`).

The extension raises these by kind (the crate's `is_*()` questions), never by message, so code
catches a kind: `except ready_signal.ConfigError`. Every one is a `ReadySignalError`.
"""

from __future__ import annotations

__all__ = [
    "ReadySignalError",
    "InvalidNameError",
    "ConfigError",
    "StoreUnavailableError",
    "StoreTimeoutError",
    "FencedOffError",
    "MalformedError",
    "FileStoreError",
    "PublisherError",
]


class ReadySignalError(Exception):
    """Anything ready_signal reports."""


class InvalidNameError(ReadySignalError, ValueError):
    """An agent, replica or namespace name outside ``[A-Za-z0-9_-]{1,64}``."""


class ConfigError(ReadySignalError, ValueError):
    """A store URL, ``READY_SIGNAL_*`` variable or setting that cannot be used."""


class StoreUnavailableError(ReadySignalError, ConnectionError):
    """Redis or NATS refused, failed or could not be reached."""


class StoreTimeoutError(StoreUnavailableError, TimeoutError):
    """A store operation did not finish in time."""


class FencedOffError(ReadySignalError):
    """A newer instance owns the replica's record; nothing was written."""


class MalformedError(ReadySignalError):
    """A stored record or event does not follow PROTOCOL.md."""


class FileStoreError(ReadySignalError, OSError):
    """Reading or writing the local-file backend failed."""


class PublisherError(ReadySignalError, RuntimeError):
    """The publisher could not start, is closed, or belongs to the parent of a forked child."""
