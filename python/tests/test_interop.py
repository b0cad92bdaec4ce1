"""The same directory used by aiodiskdb_rs and by the original library (aiodiskdb 0.2.3,
installed beside it), one after the other, each after a clean stop of the other."""

import asyncio
import os
import random

import aiodiskdb as original

import aiodiskdb_rs

from conftest import running

OPTS = dict(max_file_size=1, max_buffer_size=1)


async def run_original(path, **kw):
    db = original.AioDiskDB(path, create_if_not_exists=True, **OPTS, **kw)
    task = asyncio.get_running_loop().create_task(db.run())
    while not db.running:
        assert not task.done(), task
        await asyncio.sleep(0.001)
    return db, task


def items(rnd, n):
    return [rnd.randbytes(rnd.randint(1, 64 * 1024)) for _ in range(n)]


async def write_ours(path, data):
    db = aiodiskdb_rs.AioDiskDB(path, create_if_not_exists=True, **OPTS)
    stored = {}
    async with running(db):
        half = len(data) // 2
        for d in data[:half]:
            stored[await db.add(d)] = d
        tx = db.transaction()
        for d in data[half:]:
            tx.add(d)
        for loc, d in zip(await tx.commit(), data[half:]):
            stored[loc] = d
    return stored


async def read_ours(path, stored):
    db = aiodiskdb_rs.AioDiskDB(path, **OPTS)
    async with running(db):
        for loc, d in stored.items():
            got = await db.read(aiodiskdb_rs.ItemLocation(loc.index, loc.position, loc.size))
            assert got == d, loc


async def test_ours_then_the_original_then_ours(path):
    rnd = random.Random(1)
    stored = await write_ours(path, items(rnd, 80))
    assert len({l.index for l in stored}) >= 2, "the test should span several data files"

    # The original opens what we wrote, reads every item, and appends.
    db, task = await run_original(path)
    for loc, d in stored.items():
        theirs = original.ItemLocation(loc.index, loc.position, loc.size)
        assert await db.read(theirs) == d, loc
    appended = {}
    for d in items(rnd, 30):
        loc = await db.add(d)
        appended[aiodiskdb_rs.ItemLocation(loc.index, loc.position, loc.size)] = d
    assert await db.stop()
    await asyncio.wait_for(task, 10)

    # We read both, and append after the original's items.
    stored.update(appended)
    db = aiodiskdb_rs.AioDiskDB(path, **OPTS)
    async with running(db):
        for loc, d in stored.items():
            assert await db.read(loc) == d, loc
        last = max(stored)
        ours = await db.add(b"after the original")
        assert (ours.index, ours.position) > (last.index, last.position)
        stored[ours] = b"after the original"
    await read_ours(path, stored)


async def test_the_original_then_ours_then_the_original(path):
    rnd = random.Random(2)
    data = items(rnd, 60)
    db, task = await run_original(path)
    stored = {}
    for d in data:
        loc = await db.add(d)
        stored[aiodiskdb_rs.ItemLocation(loc.index, loc.position, loc.size)] = d
    assert await db.stop()
    await asyncio.wait_for(task, 10)

    db = aiodiskdb_rs.AioDiskDB(path, **OPTS)
    async with running(db):
        for loc, d in stored.items():
            assert await db.read(loc) == d, loc
        for d in items(rnd, 20):
            stored[await db.add(d)] = d

    db, task = await run_original(path)
    for loc, d in stored.items():
        assert await db.read(original.ItemLocation(loc.index, loc.position, loc.size)) == d, loc
    assert await db.stop()
    await asyncio.wait_for(task, 10)
    assert sorted(os.listdir(path))  # the directory is still there, with its files
