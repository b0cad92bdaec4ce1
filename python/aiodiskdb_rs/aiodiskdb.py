"""AioDiskDB: the original's class, with the same constructor, methods and events, on the
Rust engine (``aiodiskdb_rs._native``)."""

import asyncio
import atexit
import errno
import functools
import os
import shutil
import typing
import weakref
from pathlib import Path

from aiodiskdb_rs import exceptions
from aiodiskdb_rs._native import AioDiskDBTransaction, Call, Core, _exiting
from aiodiskdb_rs.internals import GracefulExit, logger
from aiodiskdb_rs.local_types import EventsHandlers, ItemLocation

__all__ = ["AioDiskDB"]

_FILE_SIZE = 128
_FILE_PREFIX = "data"
_FILE_ZEROS_PADDING = 5
_BUFFER_SIZE = 16
_BUFFER_ITEMS = 1000
_FLUSH_INTERVAL = 30
_GENESIS_BYTES = b"\r\xce\x8f7"
_TIMEOUT = 30
_CONCURRENCY = 32

_MB = 1024**2

# Databases started and not stopped: stopped at interpreter exit.
_LIVE: "weakref.WeakSet[AioDiskDB]" = weakref.WeakSet()
# Hook tasks, kept until done (the event loop keeps only weak references to tasks).
_HOOK_TASKS: "set[asyncio.Task[typing.Any]]" = set()


@atexit.register
def _stop_at_exit() -> None:
    # Interpreter exit (the end of the program, sys.exit, an uncaught KeyboardInterrupt):
    # persist what is buffered and release the directory, as a clean stop would.
    for db in list(_LIVE):
        try:
            db._core.stop_blocking()
        except Exception:  # noqa: BLE001 - nothing else can be done at exit
            logger.exception("aiodiskdb_rs: stopping %s at exit failed", db.path)
    # Then no engine thread calls into the interpreter any more (one that asked for the
    # GIL while it finalizes would abort the process).
    _exiting()


def _dispatch(ref: "weakref.ref[AioDiskDB]", kind: str, ts: float, a: typing.Any, b: typing.Any) -> None:
    # Called by the engine, on one of its threads: hand the event to the loop's thread.
    db = ref()
    if db is None or db._loop is None:
        return
    try:
        db._loop.call_soon_threadsafe(db._deliver, kind, ts, a, b)
    except RuntimeError:
        pass  # the loop is closed: nobody is left to tell


def _mb(name: str, value: typing.Any) -> int:
    try:
        return int(float(value) * _MB)
    except (TypeError, ValueError, OverflowError):
        raise exceptions.InvalidConfigurationException(
            f"{name} must be a number of MB, not {value!r}"
        ) from None


def _number(name: str, value: typing.Any, kind: typing.Callable[[typing.Any], typing.Any]) -> typing.Any:
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise exceptions.InvalidConfigurationException(
            f"{name} must be a number, not {value!r}"
        ) from None
    if kind is int and not 0 <= number < 2**32:
        # A count: the engine takes it unsigned (a negative one is no OverflowError here).
        raise exceptions.InvalidConfigurationException(
            f"{name} must be a positive integer, not {value!r}"
        )
    return number


class AioDiskDB:
    """An append-only on-disk database for asyncio, with the original ``aiodiskdb.AioDiskDB``
    API on the Rust engine.

    ``path`` is the data directory. Sizes are in MB (floats allowed, as in the original);
    ``flush_interval`` and ``timeout`` in seconds. Buffered items are flushed when the
    buffer holds ``max_buffer_size`` MB or ``max_buffer_items`` items, every
    ``flush_interval`` seconds, and on ``flush()``, ``stop()``, commits and trims.

    New keyword-only arguments: ``durability`` (``'sync'``, the default: an item counts as
    written once fsynced, and survives power loss; ``'os'``: once handed to the operating
    system, as in the original, surviving process crashes only) and ``verify_reads``
    (default ``True``: reads check each item's CRC32C).

    Raises ``InvalidConfigurationException`` for a bad argument, and ``FileNotFoundError``
    when the directory is missing and ``create_if_not_exists`` is false (as the original).
    """

    GENESIS_BYTES_LENGTH = 4
    HEADER_TRIM_OFFSET = 4
    RESERVED_HEADER_LENGTH = 16

    def __init__(
        self,
        path: typing.Union[str, "os.PathLike[str]"],
        create_if_not_exists: bool = False,
        overwrite: bool = False,
        clean_stale_data: bool = True,
        file_padding: int = _FILE_ZEROS_PADDING,
        file_prefix: str = _FILE_PREFIX,
        max_file_size: float = _FILE_SIZE,
        max_buffer_items: int = _BUFFER_ITEMS,
        max_buffer_size: float = _BUFFER_SIZE,
        flush_interval: float = _FLUSH_INTERVAL,
        genesis_bytes: bytes = _GENESIS_BYTES,
        timeout: float = _TIMEOUT,
        concurrency: int = _CONCURRENCY,
        *,
        durability: str = "sync",
        verify_reads: bool = True,
    ) -> None:
        if not isinstance(file_prefix, str) or not file_prefix.isalpha():
            raise exceptions.InvalidConfigurationException(
                "Wrong file prefix (must be alphabetic string)"
            )
        if not isinstance(genesis_bytes, (bytes, bytearray)) or len(genesis_bytes) != self.GENESIS_BYTES_LENGTH:
            raise exceptions.InvalidConfigurationException("Genesis bytes length must be 4")
        if _number("max_file_size", max_file_size, float) <= 0 or _number("max_buffer_size", max_buffer_size, float) <= 0:
            raise exceptions.InvalidConfigurationException("max file size and max buffer size must be > 0")
        if float(max_file_size) < float(max_buffer_size):
            raise exceptions.InvalidConfigurationException("max_file_size must be >= max_buffer_size")
        self.path = Path(path)
        if create_if_not_exists:
            self.path.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_dir():
            raise FileNotFoundError(errno.ENOENT, "No such directory", str(self.path))
        self._core = Core(
            str(self.path),
            create_if_missing=bool(create_if_not_exists),
            overwrite=bool(overwrite),
            clean_stale_data=bool(clean_stale_data),
            file_padding=_number("file_padding", file_padding, int),
            file_prefix=file_prefix,
            max_file_size=_mb("max_file_size", max_file_size),
            max_buffer_items=_number("max_buffer_items", max_buffer_items, int),
            max_buffer_size=_mb("max_buffer_size", max_buffer_size),
            flush_interval=_number("flush_interval", flush_interval, float),
            genesis_bytes=bytes(genesis_bytes),
            timeout=_number("timeout", timeout, float),
            concurrency=_number("concurrency", concurrency, int),
            durability=durability,
            verify_reads=bool(verify_reads),
        )
        self._events = EventsHandlers()
        self._loop: typing.Optional[asyncio.AbstractEventLoop] = None
        self._done: "typing.Optional[asyncio.Future[None]]" = None
        self._stop_signalled = False
        self._stopping: "typing.Optional[asyncio.Future[bool]]" = None

    def __repr__(self) -> str:
        return f"<aiodiskdb_rs.AioDiskDB {str(self.path)!r} running={self.running}>"

    @property
    def events(self) -> EventsHandlers:
        """The event hooks: ``db.events.on_write = coroutine_function`` (see
        :class:`~aiodiskdb_rs.local_types.EventsHandlers`)."""
        return self._events

    @property
    def running(self) -> bool:
        """Whether the database accepts calls: started, not stopped, no failed write."""
        return self._core.running

    async def run(self) -> None:
        """Opens the database (locking and, if needed, recovering the directory), then runs
        until :meth:`stop`. Start it as a task: ``loop.create_task(db.run())``; it is
        running once ``db.running`` is true (or ``on_start`` fired).

        Raises the opening error (``DatabaseLockedException``, ``InvalidDataFileException``,
        ...), ``NotRunningException`` if this database was already started (a stopped
        database does not restart: create a new ``AioDiskDB``), or, after a failed write,
        the failure. Cancelling the task stops the database (blocking until everything
        buffered is persisted).
        """
        if self._done is not None:
            raise exceptions.NotRunningException(
                "the database was already started: create a new AioDiskDB to reopen it"
            )
        loop = asyncio.get_running_loop()
        self._loop, self._done = loop, loop.create_future()
        done = self._done
        _LIVE.add(self)
        opened = False
        try:
            await self._core.open(functools.partial(_dispatch, weakref.ref(self)))
            opened = True
            await asyncio.shield(done)
        except asyncio.CancelledError:
            if not done.done():
                # The task is cancelled (asyncio.run ending, Ctrl-C), while opening or
                # running: stop cleanly (after the open, which goes on in the engine).
                self._core.stop_blocking()
                self._finish(None)
            raise
        except BaseException:
            if not opened:
                _LIVE.discard(self)  # the open failed: nothing to stop at exit
            raise

    async def start(self) -> None:
        """The same as :meth:`run` (the name the original's README uses)."""
        await self.run()

    async def stop(self) -> bool:
        """Persists everything buffered (fsynced), marks the directory cleanly stopped,
        releases it, fires ``on_stop`` and ends :meth:`run`. Every later call raises
        ``NotRunningException``; a ``stop()`` made while another is under way waits for it
        and has its outcome (as in the original). Returns ``True``.

        Raises ``NotRunningException`` if not running, ``TimeoutException`` after
        ``timeout`` seconds, ``InvalidDBStateException`` after a failed write (the
        directory is released and recovers on the next open).
        """
        if self._stopping is not None:
            # A stop is under way (a signal handler racing a shutdown, two tasks): this
            # one has its outcome, as in the original, where both return True.
            return await asyncio.shield(self._stopping)
        stopping = self._stopping = asyncio.get_running_loop().create_future()
        try:
            await self._core.stop()
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                stopping.cancel()
            else:
                stopping.set_exception(e)
                stopping.exception()  # retrieved: no "never retrieved" warning if none waits
            raise
        finally:
            # The stops waiting hold the future; a later one finds the database stopped.
            self._stopping = None
            if not self._core.running:
                _LIVE.discard(self)
        stopping.set_result(True)
        self._finish(None)
        return True

    def on_stop_signal(self, *args: typing.Any) -> None:
        """For ``signal.signal(signal.SIGTERM, db.on_stop_signal)``: stops the database
        synchronously (persisting the buffer) and raises ``GracefulExit`` (a ``SystemExit``
        with status 1), once. Later calls do nothing."""
        logger.warning("Requested stop signal: %s", args)
        if self._stop_signalled:
            return
        self._stop_signalled = True
        try:
            self._core.stop_blocking()
        finally:
            _LIVE.discard(self)
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._finish, None)
        raise GracefulExit()

    def add(self, data: typing.Union[bytes, bytearray, memoryview]) -> "Call[ItemLocation]":
        """``await db.add(data)``: appends ``data`` (``bytes``, ``bytearray``,
        ``memoryview`` or another bytes-like object, not empty) and returns its
        :class:`ItemLocation` at once; the item is readable immediately and persisted by a
        later flush. Waits for buffer space when the buffer is full.

        Raises ``EmptyPayloadException``, ``ItemTooLargeException`` (above
        ``max_buffer_size``, or above what one data file holds: ``max_file_size`` less
        its 24-byte header), ``TimeoutException``, ``NotRunningException``, ``TypeError``.
        """
        return self._core.add(data)

    def read(self, location: ItemLocation) -> "Call[typing.Optional[bytes]]":
        """``await db.read(location)``: the item's bytes, or ``None`` when the location is
        not wholly stored (never partial data). ``location`` may also be the original
        library's ``ItemLocation``. Raises ``CorruptedDataException`` when the stored bytes
        fail their checksum, ``DiskIOException`` when the disk read fails."""
        return self._core.read(location)

    def flush(self) -> "Call[None]":
        """``await db.flush()``: returns once everything added before is durable."""
        return self._core.flush()

    def wait_persisted(self, location: ItemLocation) -> "Call[None]":
        """New. ``await db.wait_persisted(location)``: returns once the item is durable,
        without forcing a flush. Raises ``NotStoredException`` for a location neither
        stored nor buffered."""
        return self._core.wait_persisted(location)

    def transaction(self) -> AioDiskDBTransaction:
        """A new transaction (``tx = db.transaction()``; ``tx = await db.transaction()``,
        the original's form, works too). Raises ``NotRunningException``."""
        return self._core.transaction()

    def enable_overwrite(self) -> None:
        """Allows :meth:`rtrim`, :meth:`ltrim`, :meth:`drop_index` and :meth:`destroy_db`."""
        self._core.enable_overwrite()

    def disable_overwrite(self) -> None:
        """Forbids trims, drops and ``destroy_db`` again (the default)."""
        self._core.disable_overwrite()

    def rtrim(self, index: int, trim_from: int, safety_check: bytes = b"") -> "Call[int]":
        """``await db.rtrim(index, trim_from, safety_check=b'')``: cuts ``index`` from
        position ``trim_from`` to its end and returns the bytes removed (``trim_from=0``
        deletes the file). ``safety_check``, when given, must equal the first bytes cut.
        Trimming the current file gives the space back to the next adds.

        Raises ``ReadOnlyDatabaseException`` (overwrite not enabled), ``IndexDoesNotExist``,
        ``InvalidTrimCommandException`` (nothing changed), ``NotRunningException``."""
        return self._core.rtrim(index, trim_from, safety_check)

    def ltrim(self, index: int, trim_to: int, safety_check: bytes = b"") -> "Call[int]":
        """``await db.ltrim(index, trim_to, safety_check=b'')``: removes the bytes of
        ``index`` before ``trim_to`` and returns how many were removed (the original
        returned ``None``); the positions of the items kept do not change. ``trim_to``
        equal to the index's end deletes the file. ``safety_check``, when given, must equal
        the last bytes removed. Raises as :meth:`rtrim`."""
        return self._core.ltrim(index, trim_to, safety_check)

    def drop_index(self, index: int) -> "Call[int]":
        """``await db.drop_index(index)``: deletes the data file of ``index``, fires
        ``on_index_drop`` and returns its size in bytes. Index numbers are never reused.
        Raises as :meth:`rtrim`."""
        return self._core.drop_index(index)

    def destroy_db(self) -> bool:
        """Deletes the whole directory. Raises ``RunningException`` while running and
        ``ReadOnlyDatabaseException`` unless overwrite is enabled. Returns ``True``."""
        logger.warning("Requested DB destroy")
        if self.running:
            raise exceptions.RunningException("Database must be stopped before destroying it")
        if not self._core.overwrite:
            raise exceptions.ReadOnlyDatabaseException(
                "destroy_db needs overwrite: call enable_overwrite() first"
            )
        shutil.rmtree(self.path)
        return True

    # Event delivery, on the loop's thread.

    def _deliver(self, kind: str, ts: float, a: typing.Any, b: typing.Any) -> None:
        events = self._events
        args: "tuple[typing.Any, ...]"
        if kind == "start":
            hook, args = events.on_start, (ts,)
        elif kind == "stop":
            hook, args = events.on_stop, (ts,)
            self._finish(None)
        elif kind == "failure":
            hook, args = events.on_failure, (ts,)
            self._finish(a)
        elif kind == "write":
            hook, args = events.on_write, (ts, a)
        elif kind == "index_drop":
            hook, args = events.on_index_drop, (ts, a, b)
        else:  # pragma: no cover - the engine sends only the kinds above
            return
        if hook is None or self._loop is None:
            return
        task: "asyncio.Task[typing.Any]" = self._loop.create_task(hook(*args))
        _HOOK_TASKS.add(task)
        task.add_done_callback(_HOOK_TASKS.discard)

    def _finish(self, error: typing.Optional[BaseException]) -> None:
        # Ends run(): normally on stop, with the error after a failed write.
        done = self._done
        if done is None or done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
