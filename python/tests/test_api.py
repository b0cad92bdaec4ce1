"""Every public call of aiodiskdb_rs, as a user of the original library makes it."""

import asyncio
import os
import pickle
import time

import pytest

import aiodiskdb_rs
import aiodiskdb_rs as aiodiskdb
from aiodiskdb_rs import exceptions
from aiodiskdb_rs.local_types import EventsHandlers, ItemLocation, WriteEvent

from conftest import running


def mkdb(path, **kw):
    kw.setdefault("create_if_not_exists", True)
    return aiodiskdb.AioDiskDB(path, **kw)


async def test_add_read_flush_and_reopen(path):
    db = mkdb(path)
    async with running(db):
        assert db.running
        loc = await db.add(b"cafe")
        assert isinstance(loc, ItemLocation)
        assert (loc.index, loc.position, loc.size) == (0, 0, 4)
        assert await db.read(loc) == b"cafe"  # from RAM, before any flush
        loc2 = await db.add(bytearray(b"babe"))
        assert loc2 == ItemLocation(0, 4, 4)
        await db.flush()
        assert await db.read(loc2) == b"babe"
        # Not stored: past the end, an index that does not exist, a range out of u32.
        assert await db.read(ItemLocation(0, 8, 1)) is None
        assert await db.read(ItemLocation(7, 0, 1)) is None
        big = os.urandom(3 * 1024 * 1024)  # above the zero-copy threshold
        loc3 = await db.add(big)
        assert await db.read(loc3) == big
    assert not db.running
    db = mkdb(path)
    async with running(db):
        assert await db.read(loc) == b"cafe"
        assert await db.read(loc2) == b"babe"
        assert await db.read(loc3) == big
        # The next add continues after what is stored.
        assert (await db.add(b"x")).position == 8 + len(big)


async def test_read_accepts_the_original_item_location(path):
    import aiodiskdb.local_types as original

    db = mkdb(path)
    async with running(db):
        loc = await db.add(b"data")
        theirs = original.ItemLocation(index=loc.index, position=loc.position, size=loc.size)
        assert await db.read(theirs) == b"data"
        assert await db.read(original.ItemLocation(index=-1, position=0, size=1)) is None


async def test_start_is_run_and_a_database_runs_once(path):
    db = mkdb(path)
    task = asyncio.get_running_loop().create_task(db.start())
    while not db.running:
        await asyncio.sleep(0.001)
    with pytest.raises(exceptions.NotRunningException):
        await db.run()
    assert await db.stop() is True
    await asyncio.wait_for(task, 5)  # run() returned: stop() ended it
    assert task.result() is None
    with pytest.raises(exceptions.NotRunningException):
        await db.stop()
    with pytest.raises(exceptions.NotRunningException):
        await db.run()


async def test_calls_before_start_and_after_stop_raise_not_running(path):
    db = mkdb(path)
    assert not db.running
    for call in (
        lambda: db.add(b"x"),
        lambda: db.read(ItemLocation(0, 0, 1)),
        db.flush,
        lambda: db.rtrim(0, 0),
        lambda: db.ltrim(0, 1),
        lambda: db.drop_index(0),
        db.stop,
    ):
        with pytest.raises(exceptions.NotRunningException):
            await call()
    with pytest.raises(exceptions.NotRunningException):
        db.transaction()
    async with running(db):
        await db.add(b"x")
    with pytest.raises(exceptions.NotRunningException):
        await db.add(b"y")
    with pytest.raises(exceptions.NotRunningException):
        await db.read(ItemLocation(0, 0, 1))


async def test_calls_are_lazy_and_work_with_tasks_and_gather(path):
    db = mkdb(path)
    async with running(db):
        never = db.add(b"never awaited")
        del never  # like a coroutine: nothing happens until awaited
        locs = await asyncio.gather(*(db.add(bytes([i]) * 10) for i in range(1, 51)))
        assert [l.position for l in locs] == list(range(0, 500, 10))
        task = asyncio.create_task(db.add(b"task"))
        loc = await task
        assert loc.position == 500
        assert await asyncio.create_task(db.read(loc)) == b"task"
        # Awaiting a call twice is an error, as for a coroutine.
        call = db.flush()
        await call
        with pytest.raises(RuntimeError):
            await call


async def test_the_event_loop_runs_while_the_engine_writes(path):
    db = mkdb(path, max_buffer_size=64, max_file_size=128)
    async with running(db):
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        blob = os.urandom(8 * 1024 * 1024)
        for _ in range(6):
            await db.add(blob)
        before = ticks
        await db.flush()  # 48 MiB written and fsynced by the engine
        during = ticks - before
        stop = True
        await t
        assert during > 0, "the event loop was blocked during the flush"


async def test_events_are_called_with_the_original_arguments(path):
    db = mkdb(path, overwrite=True, max_file_size=1, max_buffer_size=1)
    seen = []

    async def on_start(ts):
        seen.append(("start", ts))

    async def on_stop(ts):
        seen.append(("stop", ts))

    async def on_write(ts, event):
        seen.append(("write", ts, event))

    async def on_index_drop(ts, index, size):
        seen.append(("drop", ts, index, size))

    db.events.on_start = on_start
    db.events.on_stop = on_stop
    db.events.on_write = on_write
    t0 = time.time()
    async with running(db):
        a = await db.add(b"a" * 1000)
        b = await db.add(b"b" * 24)
        await db.flush()
        # Assignable at any time, while running too.
        db.events.on_index_drop = on_index_drop
        big = await db.add(b"c" * (1024 * 1024 - 100))  # does not fit index 0: index 1
        assert big.index == 1
        await db.flush()
        assert await db.drop_index(0) == 1024
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)
    kinds = [e[0] for e in seen]
    assert kinds[0] == "start" and kinds[-1] == "stop", kinds
    for e in seen:
        assert isinstance(e[1], float) and t0 - 1 <= e[1] <= time.time() + 1
    writes = [e[2] for e in seen if e[0] == "write"]
    assert all(isinstance(w, WriteEvent) for w in writes)
    assert WriteEvent(index=0, position=0, size=1024) in writes
    assert WriteEvent(index=1, position=0, size=big.size) in writes
    assert ("drop", 0, 1024) in [(e[0], e[2], e[3]) for e in seen if e[0] == "drop"]
    assert a.position == 0 and b.position == 1000


async def test_events_accept_only_coroutine_functions():
    events = EventsHandlers()

    def not_a_coroutine(ts):
        pass

    async def coroutine(ts):
        pass

    for hook in ("on_start", "on_stop", "on_failure", "on_write", "on_index_drop"):
        assert getattr(events, hook) is None
        with pytest.raises(TypeError, match=f"{hook} must be a coroutine"):
            setattr(events, hook, not_a_coroutine)
        setattr(events, hook, coroutine)
        assert getattr(events, hook) is coroutine
        setattr(events, hook, None)


async def test_transactions(path):
    db = mkdb(path)
    async with running(db):
        first = await db.add(b"before")
        tx = await db.transaction()  # the original's form
        assert isinstance(tx, aiodiskdb.AioDiskDBTransaction)
        tx.add(b"cafe")
        tx.add(b"babe")
        tx.add(b"deadbeef")
        assert len(tx) == 3
        # Staged items are invisible until the commit.
        assert await db.read(ItemLocation(0, first.size, 4)) is None
        locations = await tx.commit()
        assert locations == [
            ItemLocation(0, 6, 4),
            ItemLocation(0, 10, 4),
            ItemLocation(0, 14, 8),
        ]
        assert [await db.read(l) for l in locations] == [b"cafe", b"babe", b"deadbeef"]
        with pytest.raises(exceptions.TransactionAlreadyCommittedException):
            tx.add(b"more")
        with pytest.raises(exceptions.TransactionAlreadyCommittedException):
            await tx.commit()
        empty = db.transaction()  # the SPEC's form
        with pytest.raises(exceptions.EmptyTransactionException):
            await empty.commit()
        with pytest.raises(exceptions.EmptyPayloadException):
            empty.add(b"")
        with pytest.raises(TypeError):
            empty.add("text")
        empty.add(b"late")  # still open after the failed commit
        (late,) = await empty.commit()
        # A transaction left uncommitted is discarded.
        dropped = db.transaction()
        dropped.add(b"discarded")
        del dropped
    db = mkdb(path)
    async with running(db):
        assert [await db.read(l) for l in locations] == [b"cafe", b"babe", b"deadbeef"]
        assert await db.read(late) == b"late"
        assert await db.read(ItemLocation(0, late.position + late.size, 9)) is None


async def test_trims_and_drops_need_overwrite(path):
    db = mkdb(path, max_file_size=1, max_buffer_size=1)
    async with running(db):
        a = await db.add(b"A" * 100)
        b = await db.add(b"B" * 100)
        c = await db.add(b"C" * 100)
        for call in (lambda: db.rtrim(0, 100), lambda: db.ltrim(0, 100), lambda: db.drop_index(0)):
            with pytest.raises(exceptions.ReadOnlyDatabaseException):
                await call()
        db.enable_overwrite()
        # A failed safety check changes nothing.
        with pytest.raises(exceptions.InvalidTrimCommandException):
            await db.rtrim(0, 200, safety_check=b"X")
        with pytest.raises(exceptions.InvalidTrimCommandException):
            await db.ltrim(0, 100, safety_check=b"X")
        with pytest.raises(exceptions.InvalidTrimCommandException):
            await db.ltrim(0, 1000)  # past the end
        assert [await db.read(l) for l in (a, b, c)] == [b"A" * 100, b"B" * 100, b"C" * 100]
        # rtrim of the current file: the space goes back to the next adds.
        assert await db.rtrim(0, 200, safety_check=b"CC") == 100
        assert await db.read(c) is None
        d = await db.add(b"D" * 100)
        assert d == ItemLocation(0, 200, 100)
        # ltrim keeps the positions of the items kept.
        assert await db.ltrim(0, 100, safety_check=b"AA") == 100
        assert await db.read(a) is None
        assert await db.read(b) == b"B" * 100
        assert await db.read(d) == b"D" * 100
        with pytest.raises(exceptions.IndexDoesNotExist):
            await db.drop_index(5)
        with pytest.raises(exceptions.IndexDoesNotExist):
            await db.rtrim(-1, 0)
        with pytest.raises(exceptions.InvalidTrimCommandException):
            await db.ltrim(0, -5)
        assert await db.drop_index(0) == 200
        assert await db.read(b) is None
        # Index numbers are never reused: appends continue in a new index.
        e = await db.add(b"E")
        assert e.index == 1
        db.disable_overwrite()
        with pytest.raises(exceptions.ReadOnlyDatabaseException):
            await db.drop_index(1)
    db = mkdb(path)
    async with running(db):
        assert await db.read(b) is None
        assert await db.read(e) == b"E"


async def test_bad_arguments_raise_clear_exceptions_and_lose_nothing(path):
    db = mkdb(path, max_buffer_size=1)
    async with running(db):
        kept = await db.add(b"kept")
        with pytest.raises(exceptions.EmptyPayloadException):
            await db.add(b"")
        with pytest.raises(TypeError, match="bytes"):
            await db.add("text")
        with pytest.raises(TypeError):
            await db.add(None)
        with pytest.raises(exceptions.ItemTooLargeException) as too_large:
            await db.add(b"x" * (1024 * 1024 + 1))
        # Code written for the original catches it as it did.
        assert isinstance(too_large.value, exceptions.WriteFailedException)
        assert "1048577" in str(too_large.value)
        with pytest.raises(TypeError):
            await db.rtrim("zero", 0)
        with pytest.raises(TypeError):
            await db.read(b"not a location")
        assert await db.read(kept) == b"kept"
        after = await db.add(b"after")
        assert after.position == 4
    db = mkdb(path)
    async with running(db):
        assert await db.read(kept) == b"kept"
        assert await db.read(after) == b"after"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"file_prefix": "da7a"}, "prefix"),
        ({"file_prefix": ""}, "prefix"),
        ({"genesis_bytes": b"abc"}, "Genesis"),
        ({"max_file_size": 0}, "> 0"),
        ({"max_buffer_size": -1}, "> 0"),
        ({"max_file_size": 1, "max_buffer_size": 2}, "max_file_size"),
        ({"max_file_size": "big"}, "max_file_size"),
        ({"max_file_size": 8192}, "max_file_size"),
        ({"file_padding": 0}, "file_padding"),
        ({"max_buffer_items": 0}, "max_buffer_items"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"timeout": 0}, "timeout"),
        ({"concurrency": 0}, "concurrency"),
        ({"file_padding": -1}, "file_padding"),
        ({"max_buffer_items": -5}, "max_buffer_items"),
        ({"concurrency": -1}, "concurrency"),
        ({"concurrency": 2**40}, "concurrency"),
        ({"durability": "never"}, "durability"),
    ],
)
def test_bad_configuration(path, kwargs, match):
    with pytest.raises(exceptions.InvalidConfigurationException, match=match):
        aiodiskdb.AioDiskDB(path, create_if_not_exists=True, **kwargs)


def test_missing_directory_without_create(path):
    with pytest.raises(FileNotFoundError):
        aiodiskdb.AioDiskDB(path)
    db = aiodiskdb.AioDiskDB(path, create_if_not_exists=True)
    assert os.path.isdir(path) and not db.running
    aiodiskdb.AioDiskDB(path)  # exists now


async def test_defaults_are_the_originals(path):
    import inspect

    import aiodiskdb as original

    ours = inspect.signature(aiodiskdb.AioDiskDB.__init__).parameters
    theirs = inspect.signature(original.AioDiskDB.__init__).parameters
    for name, p in theirs.items():
        assert name in ours, name
        if name != "max_buffer_items":  # 100 in the original's code, 1000 in its README and our SPEC
            assert ours[name].default == p.default, name


async def test_a_directory_is_locked_by_its_running_database(path):
    db = mkdb(path)
    async with running(db):
        other = mkdb(path)
        with pytest.raises(exceptions.DatabaseLockedException):
            await other.run()
        assert not other.running
    # Released by stop: a new instance opens it.
    again = mkdb(path)
    async with running(again):
        assert again.running


async def test_wait_persisted(path):
    db = mkdb(path, flush_interval=0.05)
    async with running(db):
        loc = await db.add(b"soon durable")
        await asyncio.wait_for(db.wait_persisted(loc), 5)  # the interval flushes it
        with pytest.raises(exceptions.NotStoredException):
            await db.wait_persisted(ItemLocation(3, 0, 1))


async def test_destroy_db(path):
    db = mkdb(path)
    async with running(db):
        await db.add(b"x")
        with pytest.raises(exceptions.RunningException):
            db.destroy_db()
    with pytest.raises(exceptions.ReadOnlyDatabaseException):
        db.destroy_db()
    db.enable_overwrite()
    assert db.destroy_db() is True
    assert not os.path.exists(path)


async def test_cancelling_run_stops_the_database(path):
    db = mkdb(path)
    task = asyncio.get_running_loop().create_task(db.run())
    while not db.running:
        await asyncio.sleep(0.001)
    loc = await db.add(b"buffered only")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not db.running
    db = mkdb(path)
    async with running(db):
        assert await db.read(loc) == b"buffered only"


async def test_cancelling_run_while_it_opens_stops_the_database(path):
    db = mkdb(path)
    task = asyncio.get_running_loop().create_task(db.run())
    await asyncio.sleep(0)  # run() has started the open, which goes on in the engine
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not db.running
    # Opened, then stopped: the directory is free.
    again = mkdb(path)
    async with running(again):
        assert await again.read(await again.add(b"x")) == b"x"


def test_item_location_value_type():
    import aiodiskdb.local_types as original

    loc = ItemLocation(index=3, position=80, size=1024333)
    assert loc.serialize() == original.ItemLocation(3, 80, 1024333).serialize()
    assert len(loc.serialize()) == 12
    assert ItemLocation.deserialize(loc.serialize()) == loc
    assert loc == ItemLocation(3, 80, 1024333) and loc != ItemLocation(3, 80, 1)
    assert hash(loc) == hash(ItemLocation(3, 80, 1024333))
    assert len({loc, ItemLocation(3, 80, 1024333)}) == 1
    assert repr(loc) == "ItemLocation(index=3, position=80, size=1024333)"
    assert pickle.loads(pickle.dumps(loc)) == loc
    assert ItemLocation(0, 5, 1) < ItemLocation(1, 0, 1)
    # Any bytes-like object, as the original (keys read back from a store or a socket).
    for raw in (bytearray(loc.serialize()), memoryview(loc.serialize())):
        assert ItemLocation.deserialize(raw) == loc
    with pytest.raises(TypeError, match="bytes-like"):
        ItemLocation.deserialize("not bytes")
    with pytest.raises(exceptions.InvalidLocationException):
        ItemLocation.deserialize(b"short")
    with pytest.raises(ValueError):
        ItemLocation.deserialize(b"x" * 13)
    with pytest.raises(OverflowError):
        ItemLocation(-1, 0, 0)
    with pytest.raises(AttributeError):
        loc.index = 4  # immutable: it is hashable
    ev = WriteEvent(index=1, position=2, size=3)
    assert (ev.index, ev.position, ev.size) == (1, 2, 3)
    assert ev == WriteEvent(1, 2, 3) and repr(ev) == "WriteEvent(index=1, position=2, size=3)"


def test_exceptions_match_the_original():
    import aiodiskdb.exceptions as original

    names = [n for n, v in vars(original).items() if isinstance(v, type) and issubclass(v, BaseException)]
    assert "AioDiskDBException" in names and len(names) > 10
    for name in names:
        ours = getattr(exceptions, name)
        theirs = getattr(original, name)
        assert [b.__name__ for b in ours.__mro__] == [b.__name__ for b in theirs.__mro__], name
    new = {
        "ItemTooLargeException": exceptions.WriteFailedException,
        "DatabaseFullException": exceptions.WriteFailedException,
        "DatabaseLockedException": exceptions.AioDiskDBException,
        "CorruptedDataException": exceptions.AioDiskDBException,
        "NotStoredException": exceptions.AioDiskDBException,
        "InvalidLocationException": ValueError,
        "DiskIOException": OSError,
    }
    for name, base in new.items():
        cls = getattr(exceptions, name)
        assert issubclass(cls, base) and issubclass(cls, exceptions.AioDiskDBException), name
    from aiodiskdb_rs.internals import GracefulExit

    assert issubclass(GracefulExit, SystemExit) and GracefulExit.code == 1


async def test_durability_os_is_the_originals_semantics(path):
    db = mkdb(path, durability="os")
    async with running(db):
        loc = await db.add(b"page cache")
        await db.flush()
    db = mkdb(path)
    async with running(db):
        assert await db.read(loc) == b"page cache"


async def test_corrupted_data_is_reported_not_returned(path):
    db = mkdb(path)
    async with running(db):
        loc = await db.add(b"precious bytes")
    with open(os.path.join(path, "data00000.dat"), "r+b") as f:
        f.seek(24 + loc.position)
        f.write(b"P")
    db = mkdb(path)
    async with running(db):
        with pytest.raises(exceptions.CorruptedDataException):
            await db.read(loc)
    db = mkdb(path, verify_reads=False)
    async with running(db):
        assert await db.read(loc) == b"Precious bytes"


async def test_items_may_be_any_bytes_like_object(path):
    import array

    db = mkdb(path)
    async with running(db):
        view = await db.add(memoryview(b"xxviewxx")[2:6])
        arr = await db.add(array.array("B", [1, 2, 3]))
        tx = db.transaction()
        tx.add(memoryview(bytearray(b"in a transaction")))
        (in_tx,) = await tx.commit()
        for bad in ("text", 5, None):
            with pytest.raises(TypeError, match="bytes-like"):
                await db.add(bad)
        assert await db.read(view) == b"view"
        assert await db.read(arr) == b"\x01\x02\x03"
        assert await db.read(in_tx) == b"in a transaction"


async def test_adds_under_back_pressure_keep_call_order(path):
    # A 1 MB buffer, 400 adds of about 10 KB at once: most wait for space, and are
    # placed in the order they were made, as the original's.
    db = mkdb(path, max_file_size=2, max_buffer_size=1)
    async with running(db):
        items = [bytes([i % 251 + 1]) * (10000 + i) for i in range(400)]
        locs = await asyncio.gather(*[db.add(item) for item in items])
        assert locs == sorted(locs, key=lambda loc: (loc.index, loc.position))
        for loc, item in zip(locs[::37], items[::37]):
            assert await db.read(loc) == item


async def test_a_stop_while_another_runs_waits_for_it(path):
    db = mkdb(path)
    async with running(db):
        loc = await db.add(b"persisted by the first stop")
        assert await asyncio.gather(db.stop(), db.stop()) == [True, True]
        with pytest.raises(exceptions.NotRunningException):
            await db.stop()
    db = mkdb(path)
    async with running(db):
        assert await db.read(loc) == b"persisted by the first stop"


async def test_the_head_file_deleted_while_running_fails_the_flush(path):
    db = mkdb(path)
    failures = []

    async def on_failure(ts, *args):
        failures.append(ts)

    db.events.on_failure = on_failure
    async with running(db) as task:
        await db.add(b"first")
        await db.flush()
        os.remove(os.path.join(path, "data00000.dat"))
        await db.add(b"second")
        # As the original: the flush raises, instead of acknowledging an item written
        # into a file no one can open again.
        with pytest.raises(exceptions.FilesInconsistencyException, match="deleted"):
            await db.flush()
        with pytest.raises(exceptions.AioDiskDBException):
            await db.add(b"third")
        await asyncio.sleep(0.05)
    assert failures, "on_failure fired"
    with pytest.raises(exceptions.FilesInconsistencyException):
        task.result()  # what run() raised


async def test_calls_needing_no_io_complete_without_an_event_loop_round(path):
    # A task scheduled now runs at the next loop round: if an add or a read took a
    # thread hop (a future resolved by call_soon_threadsafe), it would run meanwhile.
    db = mkdb(path)
    async with running(db):
        ran = []
        asyncio.get_running_loop().call_soon(ran.append, True)
        locs = [await db.add(b"%d" % i) for i in range(500)]
        assert [await db.read(l) for l in locs] == [b"%d" % i for i in range(500)]
        assert not ran, "an add or a read from RAM went through the event loop"
        await db.flush()
        assert await db.read(locs[0]) == b"0"  # may open the file: one hop allowed
        rounds = 0
        for loc in locs[1:101]:
            ran.clear()
            asyncio.get_running_loop().call_soon(ran.append, True)
            await db.read(loc)
            rounds += bool(ran)
        # Served from the page cache with preadv2(RWF_NOWAIT), on the caller's thread.
        assert rounds <= 5, f"{rounds} of 100 reads from the page cache took a loop round"


async def test_the_gil_is_released_while_the_engine_blocks(path):
    import threading

    db = mkdb(path, max_buffer_size=64, max_file_size=128)
    async with running(db):
        blob = os.urandom(8 * 1024 * 1024)
        for _ in range(6):
            await db.add(blob)
        counter = 0
        stop = threading.Event()

        def spin():
            nonlocal counter
            while not stop.is_set():
                counter += 1

        t = threading.Thread(target=spin)
        t.start()
        try:
            time.sleep(0.01)
            before = counter
            # What on_stop_signal and interpreter exit do: a blocking stop (48 MiB fsynced).
            assert db._core.stop_blocking() is True
            during = counter - before
        finally:
            stop.set()
            t.join()
        assert during > 1000, "a Python thread could not run during the blocking stop"


def test_every_public_name_has_a_docstring():
    import inspect

    import aiodiskdb_rs.internals
    import aiodiskdb_rs.local_types

    names = []
    for module in (aiodiskdb, exceptions, aiodiskdb_rs.local_types, aiodiskdb_rs.internals):
        assert (module.__doc__ or "").strip(), module.__name__
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                continue
            names.append((f"{module.__name__}.{name}", obj))
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                for attr, member in vars(obj).items():
                    if not attr.startswith("_"):
                        names.append((f"{module.__name__}.{name}.{attr}", getattr(obj, attr)))
    assert len(names) > 40
    missing = [n for n, obj in names if not (inspect.getdoc(obj) or "").strip()]
    assert not missing, missing
