"""The workloads of ../shared/tools/pybench.py (the baseline of the original library),
run on a library chosen by name: ``aiodiskdb_rs`` (this package) or ``aiodiskdb`` (the
original). The workload code is the same for both: switching is the change of import.

Usage: python workloads.py LIBRARY WORKLOAD DIR
Workloads: small (100,000 adds of 100 B, then stop), mixed (1..4096 B adds up to 20 MB
with a concurrent verifying reader, as the seed's small-items concurrency test; each
write and each read then awaits asyncio.sleep as pybench does), mixed-yield (the same
with asyncio.sleep(0): without the timer granularity of the event loop), randread
(10,000 random reads after reopen of 20,000 items of 100 B), large (random
1 KiB..1 MiB adds up to 256 MiB, then stop).
Prints one line: workload key=value ...
"""

import asyncio
import importlib
import os
import random
import shutil
import sys
import time


def mkdb(lib, path, **kw):
    return lib.AioDiskDB(path, create_if_not_exists=True, overwrite=True, **kw)


async def start(db):
    t = asyncio.get_event_loop().create_task(db.run())
    while not db.running:
        await asyncio.sleep(0.001)
    return t


async def small(lib, path, n=100_000, size=100, quiet=False):
    db = mkdb(lib, path)
    await start(db)
    payload = os.urandom(size)
    s = time.perf_counter()
    locs = [await db.add(payload) for _ in range(n)]
    await db.stop()
    dt = time.perf_counter() - s
    if not quiet:
        print(f"small items={n} size={size} secs={dt:.3f} adds_per_s={n / dt:.0f}")
    return locs


async def randread(lib, path, n=10_000):
    locs = await small(lib, path, n=20_000, quiet=True)
    db = mkdb(lib, path)
    await start(db)
    rnd = random.Random(7)
    s = time.perf_counter()
    for _ in range(n):
        assert await db.read(locs[rnd.randrange(len(locs))]) is not None
    dt = time.perf_counter() - s
    await db.stop()
    print(f"randread reads={n} secs={dt:.3f} reads_per_s={n / dt:.0f}")


async def large(lib, path, total=256 * 1024**2):
    db = mkdb(lib, path)
    await start(db)
    rnd = random.Random(1)
    blob = os.urandom(1024**2)
    s = time.perf_counter()
    done = n = 0
    while done < total:
        k = rnd.randint(1024, 1024**2)
        await db.add(blob[:k])
        done += k
        n += 1
    await db.stop()
    dt = time.perf_counter() - s
    print(f"large items={n} mb={done / 1024**2:.0f} secs={dt:.3f} mb_per_s={done / 1024**2 / dt:.1f}")


async def mixed(lib, path, total=20 * 1024**2, pause=True):
    db = mkdb(lib, path)
    await start(db)
    data, reads, stop = [], 0, False
    read_pause, write_pause = (0.0001, 0.00001) if pause else (0, 0)

    async def reader():
        nonlocal reads
        while not stop:
            if not data:
                await asyncio.sleep(0.01)
                continue
            loc, exp = data[random.randrange(len(data))]
            assert await db.read(loc) == exp
            reads += 1
            await asyncio.sleep(read_pause)

    rt = asyncio.get_event_loop().create_task(reader())
    s = time.perf_counter()
    done = writes = 0
    while done < total:
        k = random.randint(1, 4096)
        d = os.urandom(k)
        loc = await db.add(d)
        data.append((loc, d))
        done += k
        writes += 1
        await asyncio.sleep(write_pause)
    dt = time.perf_counter() - s
    stop = True
    await rt
    await db.stop()
    name = "mixed" if pause else "mixed-yield"
    print(f"{name} writes={writes} reads={reads} secs={dt:.2f} writes_per_s={writes / dt:.0f} reads_per_s={reads / dt:.0f}")


async def main():
    lib = importlib.import_module(sys.argv[1])
    w, path = sys.argv[2], sys.argv[3]
    shutil.rmtree(path, ignore_errors=True)
    if w == "small":
        await small(lib, path)
    elif w == "randread":
        await randread(lib, path)
    elif w == "large":
        await large(lib, path)
    elif w == "mixed":
        await mixed(lib, path)
    elif w == "mixed-yield":
        await mixed(lib, path, pause=False)
    else:
        raise SystemExit(f"unknown workload {w}")
    shutil.rmtree(path, ignore_errors=True)


asyncio.run(main())
