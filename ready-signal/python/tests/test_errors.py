"""The crate's error kinds arrive as Python exceptions of those kinds."""

from __future__ import annotations

import time

import pytest

import ready_signal
from ready_signal import (ConfigError, InvalidNameError, PublisherError, ReadySignal,
                          ReadySignalError)


def test_invalid_name_is_its_kind(tmp_path) -> None:
    """A name outside [A-Za-z0-9_-] raises InvalidNameError, a ReadySignalError and ValueError."""
    with pytest.raises(InvalidNameError) as e:
        ReadySignal("bad name", dir=tmp_path)
    assert isinstance(e.value, ReadySignalError) and isinstance(e.value, ValueError)
    assert "bad name" in str(e.value)


def test_bad_settings_are_config_errors(tmp_path, monkeypatch) -> None:
    """Bad URLs, variables and durations raise ConfigError naming what is wrong."""
    with pytest.raises(ConfigError, match="scheme `http`"):
        ReadySignal("a", redis_url="http://x")
    monkeypatch.setenv("READY_SIGNAL_REDIS_URL", "ftp://x")
    with pytest.raises(ConfigError, match="^READY_SIGNAL_REDIS_URL: "):
        ReadySignal("a")
    monkeypatch.delenv("READY_SIGNAL_REDIS_URL")
    with pytest.raises(ConfigError, match="shorter than two intervals"):
        ReadySignal("a", dir=tmp_path, interval=1, ttl=1)
    with pytest.raises(ConfigError, match="stall_after"):
        ReadySignal("a", dir=tmp_path, stall_after=-1)
    with pytest.raises(ConfigError, match="instance"):
        ReadySignal("a", dir=tmp_path, instance="not-an-instance")


def test_closed_signal_refuses_states_but_tick_is_harmless(tmp_path) -> None:
    """After close(), a state change raises PublisherError; tick() and busy() do nothing."""
    signal = ReadySignal("closed-one", dir=tmp_path, replica="r")
    signal.close()
    signal.close()  # idempotent
    with pytest.raises(PublisherError, match="closed"):
        signal.ready()
    signal.tick()
    with signal.busy(1):
        pass


def test_unreachable_store_shows_in_last_error(tmp_path) -> None:
    """A Redis that refuses connections never raises into the agent: last_error names it."""
    with ReadySignal("unreachable", redis_url="redis://127.0.0.1:1", dir=tmp_path,
                     replica="r", interval=0.05) as signal:
        signal.ready()
        deadline = time.monotonic() + 5
        while signal.last_error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert signal.last_error is not None
        assert "redis at 127.0.0.1:1" in signal.last_error, signal.last_error


def test_exception_kinds_mirror_the_crate() -> None:
    """Every kind has its class, and all of them are ReadySignalError."""
    for name in ["InvalidNameError", "ConfigError", "StoreUnavailableError", "StoreTimeoutError",
                 "FencedOffError", "MalformedError", "FileStoreError", "PublisherError"]:
        assert issubclass(getattr(ready_signal, name), ReadySignalError)
    assert issubclass(ready_signal.StoreTimeoutError, ready_signal.StoreUnavailableError)
