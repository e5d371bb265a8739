"""Python agents publish whether they are ready, and prove that their work loop still moves.

This package is the Rust crate ``ready-signal`` (PROTOCOL.md) compiled into the interpreter with
PyO3: the records, the stores and the heartbeat are the crate's, and the publisher is the
crate's own OS thread, which never needs the GIL. This file adds what is Python's own: context
managers, asyncio, SIGTERM, fork and interpreter exit.

    from ready_signal import ReadySignal

    with ReadySignal("summarizer", stall_after=10) as signal:   # stores from READY_SIGNAL_*
        load_models()
        signal.ready()
        for job in queue:
            with signal.busy(60):          # one long item may take a minute
                handle(job)
            signal.tick()                  # progress: an atomic store, no I/O, GIL kept

The record stays fresh only while ``tick()`` keeps coming (within ``stall_after``) or a
``busy()`` budget runs. Anything that stops the ticking thread stops the refreshes: a blocking
call on an asyncio loop, two tasks deadlocked (when the ticks come from the work), a C call
that never returns. The record then reads ``stale`` (after two intervals) and ``dead`` (after
the TTL) while the process lives on, which is what the probe's ``ready://`` reports.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal as _signal
import threading
import weakref
from typing import Any, Callable, Generator, Iterable, Optional, Union

from . import _native
from .errors import (
    ConfigError,
    FencedOffError,
    FileStoreError,
    InvalidNameError,
    MalformedError,
    PublisherError,
    ReadySignalError,
    StoreTimeoutError,
    StoreUnavailableError,
)

__all__ = [
    "ReadySignal",
    "Busy",
    "Closing",
    "DEFAULT_INTERVAL",
    "DEFAULT_STALL_AFTER",
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

#: Heartbeat interval in seconds when none is given (the crate's default).
DEFAULT_INTERVAL: float = _native.DEFAULT_INTERVAL
#: Seconds without a tick after which the work loop counts as stalled (the crate's default).
DEFAULT_STALL_AFTER: float = _native.DEFAULT_STALL_AFTER

PathLike = Union[str, "os.PathLike[str]"]

# Every open signal of this process, to close at interpreter exit and let go of after fork.
_live: "weakref.WeakSet[ReadySignal]" = weakref.WeakSet()


class ReadySignal:
    """One agent's ready signal: publishes ``starting`` at once, then what you say.

    Stores come from ``READY_SIGNAL_REDIS_URL``, ``READY_SIGNAL_REDIS_PASSWORD_FILE``,
    ``READY_SIGNAL_NATS_URL`` (and its ``_PASSWORD_FILE`` / ``_TOKEN_FILE``), ``READY_SIGNAL_DIR``,
    ``READY_SIGNAL_NAMESPACE``, ``READY_SIGNAL_REPLICA`` (default: the host name, which is the
    container id under Docker); a keyword argument given here overrides its variable. Times are
    in seconds. Raises ``ConfigError`` / ``InvalidNameError`` for settings that cannot work.
    The NATS URL may list the seeds of a cluster, ``nats://[credentials@]h1:4222,h2,h3``
    (PROTOCOL.md, "Clusters").
    """

    def __init__(
        self,
        agent: str,
        *,
        stall_after: Optional[float] = None,
        interval: Optional[float] = None,
        ttl: Optional[float] = None,
        redis_url: Optional[str] = None,
        nats_url: Optional[str] = None,
        dir: Optional[PathLike] = None,
        namespace: Optional[str] = None,
        replica: Optional[str] = None,
        instance: Optional[str] = None,
    ) -> None:
        for name, value in (("stall_after", stall_after), ("interval", interval), ("ttl", ttl)):
            if value is not None and not (value >= 0):
                raise ConfigError(f"{name}: {value!r} is not a number of seconds")
        self._native = _native.Publisher(
            agent,
            redis_url=redis_url,
            nats_url=nats_url,
            dir=os.fspath(dir) if dir is not None else None,
            namespace=namespace,
            replica=replica,
            instance=instance,
            interval=interval,
            ttl=ttl,
            stall_after=stall_after,
        )
        self._stall_after = DEFAULT_STALL_AFTER if stall_after is None else float(stall_after)
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._stop_waiters: "list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]" = []
        self._watchers: "set[asyncio.Task[None]]" = set()
        # The hot path: `signal.tick()` calls the extension directly, with no Python frame in
        # between (the method below documents it; this attribute shadows it).
        self.__dict__["tick"] = self._native.tick
        _live.add(self)

    # -- states ---------------------------------------------------------------------------

    def tick(self) -> None:  # noqa: F811 (shadowed per instance by the native method)
        """Marks progress of the work loop: a clock read and an atomic store, no I/O, GIL kept.

        Call it once per iteration of the work itself (not from a timer): it is the proof that
        the work moves. It costs well under a microsecond.
        """
        self._native.tick()

    def ready(self) -> None:
        """Publishes ``ready`` (and counts as progress)."""
        self._native.ready()

    def not_ready(self, reason: str) -> None:
        """Publishes ``not-ready`` with a one-line reason (cut to 200 bytes)."""
        self._native.not_ready(reason)

    def starting(self) -> None:
        """Publishes ``starting`` again, for example while reconnecting to a dependency."""
        self._native.starting()

    def stopping(self) -> None:
        """Publishes ``stopping``: the record stays, refreshed, until ``close()``."""
        self._native.stopping()

    def busy(self, seconds: float) -> "Busy":
        """Declares that the current item may take up to ``seconds`` without a tick.

        Takes effect at once; as a context manager (``with`` or ``async with``) the budget ends
        when the block does. When the budget runs out, the record goes stale as if frozen.
        """
        if not (seconds >= 0):
            raise ConfigError(f"busy budget: {seconds!r} is not a number of seconds")
        self._native.busy(float(seconds))
        return Busy(self)

    # -- identity -------------------------------------------------------------------------

    @property
    def agent(self) -> str:
        """The agent name."""
        return self._native.agent

    @property
    def replica(self) -> str:
        """This process's replica name."""
        return self._native.replica

    @property
    def instance(self) -> str:
        """This process's instance id (``{13 digit start ms}-{8 hex}``)."""
        return self._native.instance

    @property
    def container(self) -> Optional[str]:
        """The id of the container this process runs in (64 lowercase hex digits), as its
        records carry it (PROTOCOL.md, "The container and the instance's start"), or None
        outside a container."""
        return self._native.container

    @property
    def last_error(self) -> Optional[str]:
        """The last warning the publisher logged (a store it could not write), or None.

        The publisher never raises into your code: a store outage must not stop the work. This
        is where it shows. A later success does not clear it.
        """
        return self._native.last_error

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has run (always True in a forked child)."""
        return self._native.closed

    @property
    def stall_after(self) -> float:
        """Seconds without a tick after which the record is no longer refreshed."""
        return self._stall_after

    # -- closing --------------------------------------------------------------------------

    def close(self) -> "Closing":
        """Publishes ``stopping``, removes the record and stops the publisher. Idempotent.

        Outside a running event loop it blocks until done (a few store timeouts at most).
        Called on a running loop's thread it never blocks the loop: the shutdown runs on the
        loop's default executor and the returned ``Closing`` is awaited for it to finish
        (``await signal.close()``); left un-awaited, it still completes.
        """
        self._cancel_watchers()
        _live.discard(self)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._native.close()
            return Closing(None)
        return Closing(loop.run_in_executor(None, self._native.close))

    async def aclose(self) -> None:
        """As ``close()``, always awaitable, never blocking the loop."""
        await self.close()

    def __enter__(self) -> "ReadySignal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "ReadySignal":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<ReadySignal {self.agent}/{self.replica} instance {self.instance} {state}>"

    # -- asyncio --------------------------------------------------------------------------

    def watch_loop(self, period: Optional[float] = None) -> "asyncio.Task[None]":
        """Ticks from a task on the running loop, every ``period`` seconds.

        What it proves: the event loop turns. A blocking call on the loop (``time.sleep``, a
        synchronous client, a C call holding the loop thread) stops it, and the record goes
        stale. What it does not prove: that your work progresses. Two tasks deadlocked on each
        other's locks, or a task awaiting a future nobody resolves, leave the loop turning and
        this task ticking, so the record stays fresh. To catch those, ``tick()`` from the work
        itself. The task ends with ``close()``. Default period: a quarter of ``stall_after``,
        at most one second.
        """
        if period is None:
            period = min(1.0, self._stall_after / 4)
        if not (period > 0):
            raise ConfigError(f"watch_loop period: {period!r} is not a positive number of seconds")
        task = asyncio.get_running_loop().create_task(self._watch(period))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return task

    async def _watch(self, period: float) -> None:
        tick = self._native.tick
        while True:
            tick()
            await asyncio.sleep(period)

    def _cancel_watchers(self) -> None:
        for task in list(self._watchers):
            loop = task.get_loop()
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                task.cancel()
            else:
                loop.call_soon_threadsafe(task.cancel)

    # -- SIGTERM --------------------------------------------------------------------------

    def handle_sigterm(
        self,
        on_stop: Optional[Callable[[], Any]] = None,
        signals: Iterable[int] = (_signal.SIGTERM,),
    ) -> None:
        """On SIGTERM (Docker's and Kubernetes' stop), publish ``stopping`` and let the agent finish.

        The handler publishes ``stopping`` (probes fail, so no new work is routed here, and the
        record says why), sets ``stop_requested``, wakes ``wait_for_stop()`` and calls
        ``on_stop`` if given. It does not raise into your code or exit: finish the current item,
        then leave the ``with`` block (which removes the record). Called from a coroutine, it
        installs ``loop.add_signal_handler`` on the running loop; otherwise ``signal.signal``
        (which Python allows on the main thread only). Pass ``signals=(SIGTERM, SIGINT)`` to
        treat Ctrl-C the same way.
        """
        def handler(*_: object) -> None:
            if not self._native.forked and not self._native.closed:
                self._native.stopping()
            self._request_stop()
            if on_stop is not None:
                on_stop()

        try:
            loop: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for sig in signals:
            if loop is not None:
                loop.add_signal_handler(sig, handler)
            else:
                _signal.signal(sig, handler)

    @property
    def stop_requested(self) -> bool:
        """Whether a signal installed by ``handle_sigterm()`` has arrived."""
        return self._stop.is_set()

    async def wait_for_stop(self) -> None:
        """Returns once a signal installed by ``handle_sigterm()`` has arrived."""
        if self._stop.is_set():
            return
        event = asyncio.Event()
        self._stop_waiters.append((asyncio.get_running_loop(), event))
        if self._stop.is_set():
            return
        await event.wait()

    def _request_stop(self) -> None:
        self._stop.set()
        for loop, event in self._stop_waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)
        self._stop_waiters.clear()


class Busy:
    """A declared busy budget; ``with`` / ``async with`` ends it when the block ends."""

    __slots__ = ("_signal",)

    def __init__(self, signal: ReadySignal) -> None:
        self._signal = signal

    def end(self) -> None:
        """Ends the budget now; the item's end counts as progress."""
        if not self._signal._native.closed:
            self._signal._native.busy(0.0)

    def __enter__(self) -> "Busy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    async def __aenter__(self) -> "Busy":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.end()


class Closing:
    """What ``close()`` returns: awaitable; already finished when ``close()`` ran off a loop."""

    __slots__ = ("_future",)

    def __init__(self, future: "Optional[asyncio.Future[None]]") -> None:
        self._future = future

    def done(self) -> bool:
        """Whether the record has been removed and the publisher stopped."""
        return self._future is None or self._future.done()

    def __await__(self) -> Generator[Any, None, None]:
        if self._future is not None:
            yield from self._future.__await__()


def _close_all_at_exit() -> None:
    # Interpreter exit: publish `stopping` and remove the records of signals left open, while
    # the interpreter still works (the extension's own drop may run too late, or never).
    for signal in list(_live):
        if signal._pid == os.getpid():
            signal._native.close()


def _after_fork_in_child() -> None:
    # A forked child has the parent's memory but not its threads: each inherited signal lets go
    # of its handle (never joining the parent's thread, never writing for the parent). The
    # child starts its own ReadySignal if it has one to publish.
    for signal in list(_live):
        signal._native.close()
        signal._watchers.clear()
        signal._stop_waiters.clear()
    _live.clear()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
