#!/usr/bin/env python3
"""Live Python <-> Rust round trip for aiodiskdb (Python side, aiodiskdb==0.2.3).

Usage:
    PY tests/compat/roundtrip.py write DIR [--last-file-room]
        The Python library creates DIR/db (small files: max_file_size 0.01 MiB), adds 200
        seeded random items (1..3000 bytes) plus one 5-item transaction, stops cleanly and
        writes DIR/expected.json. By default it keeps adding items at the end until the last
        data file is full (data size >= max_file_size), the state Python normally leaves
        behind, so the next add must open a new index; --last-file-room leaves room instead.

    (the Rust side then opens DIR/db, adds/trims, and EXTENDS DIR/expected.json)

    PY tests/compat/roundtrip.py verify DIR
        Opens DIR/db with the Python library (config from DIR/expected.json), checks every
        item (present: exact bytes; absent: read gives None/empty), adds a few items and a
        transaction with Python, stops, re-opens, re-checks everything, and writes
        DIR/expected.final.json (all items, including the ones Python added).
        Prints "roundtrip ok: N items verified" and exits 0, or prints the differences and
        exits 1.

expected.json shape (same as tests/fixtures, see tests/fixtures/gen_fixtures.py):
{"config": {"prefix": "data", "padding": 5, "genesis_hex": "0dce8f37",
            "max_file_size": <bytes>, "max_buffer_size": <bytes>, ...informative extras},
 "items": [{"index": i, "position": p, "size": s, "hex": "...", "present": true|false}, ...],
 "files": {"<index>": {"len": n, "trim_offset": t}},   # as written by `write` only
 "notes": "..."}
"""
import asyncio
import json
import logging
import os
import random
import sys
import traceback
from pathlib import Path

from aiodiskdb import AioDiskDB
from aiodiskdb.local_types import ItemLocation

MIB = 1024 ** 2
logging.getLogger('aiodiskdb').setLevel(logging.ERROR)  # silence 'Aiodiskdb is stopped'
HEADER = 24
FILE_MIB = 0.01
BUFFER_MIB = 0.004
DEFAULT_GENESIS = b'\r\xce\x8f7'
WRITE_SEED = 20240601
VERIFY_SEED = 777


# --------------------------------------------------------------------------- helpers

def last_file_is_full(db) -> bool:
    names = [n for n in sorted(os.listdir(db.path)) if n.startswith(db._file_prefix) and n.endswith('.dat')]
    if not names:
        return False
    return os.path.getsize(os.path.join(db.path, names[-1])) - HEADER >= db._max_file_size


async def start(db):
    """
    Start db.run() and wait until it is running.
    Python 0.2.3 bug workaround: if the last data file is already full, the very first
    run-loop iteration flushes (to roll over to a new index) before `running` is set, and
    _write_db_checkpoint then raises NotRunningException. Mark it running after _pre_loop.
    """
    if last_file_is_full(db):
        orig_pre_loop = db._pre_loop

        async def _pre_loop():
            await orig_pre_loop()
            db._running = True
        db._pre_loop = _pre_loop
    task = asyncio.get_event_loop().create_task(db.run())
    while not db.running:
        if task.done():
            task.result()
            raise RuntimeError('db.run() returned before running')
        await asyncio.sleep(0.005)
    return task


async def stop(db, task):
    await db.stop()
    await task


async def safe_add(db, data: bytes):
    """
    db.add(), avoiding the Python 0.2.3 hang when a file ends exactly at max_file_size
    (_run_loop flushes on >=, _pop_buffer_data rolls over on >): grow the item by one byte.
    """
    while True:
        b = db._buffers[-1]
        if b.file_size + b.offset >= db._max_file_size or b.size >= db._max_buffer_size:
            await asyncio.sleep(0.01)
            continue
        break
    if b.file_size + len(data) == db._max_file_size:
        data = data + b'\x00'
    loc = await db.add(data)
    return loc, data


async def tx_add(db, datas):
    datas = list(datas)
    fs = db._buffers[-1].file_size
    if fs > db._max_file_size:
        fs = 0
    for d in datas:
        if fs + len(d) > db._max_file_size:
            fs = 0
        fs += len(d)
    if fs == db._max_file_size:  # same hang as above
        datas[-1] = datas[-1] + b'\x00'
    tx = await db.transaction()
    for d in datas:
        tx.add(d)
    locs = await tx.commit()
    assert len(locs) == len(datas), (locs, len(datas))
    return list(zip(locs, datas))


def item(loc, data):
    assert loc.size == len(data)
    return {'index': loc.index, 'position': loc.position, 'size': loc.size,
            'hex': data.hex(), 'present': True}


def make_config():
    return {
        'prefix': 'data',
        'padding': 5,
        'genesis_hex': DEFAULT_GENESIS.hex(),
        'max_file_size': int(float(FILE_MIB) * MIB),
        'max_buffer_size': int(float(BUFFER_MIB) * MIB),
        'max_file_size_mib': FILE_MIB,
        'max_buffer_size_mib': BUFFER_MIB,
    }


def open_db(path, cfg, **kw):
    return AioDiskDB(
        str(path),
        file_prefix=cfg['prefix'],
        file_padding=cfg['padding'],
        genesis_bytes=bytes.fromhex(cfg['genesis_hex']),
        # bytes / 2**20 is exact in binary floating point: Python recomputes the same byte sizes
        max_file_size=cfg['max_file_size'] / MIB,
        max_buffer_size=cfg['max_buffer_size'] / MIB,
        **kw,
    )


def scan_files(dbdir: Path, cfg):
    out = {}
    for name in sorted(os.listdir(dbdir)):
        if not (name.startswith(cfg['prefix']) and name.endswith('.dat')):
            continue
        with open(dbdir / name, 'rb') as f:
            head = f.read(HEADER)
        out[str(int(name[len(cfg['prefix']):-4]))] = {
            'len': (dbdir / name).stat().st_size,
            'trim_offset': int.from_bytes(head[4:8], 'little') if len(head) >= 8 else 0,
        }
    return out


def rand_bytes(rng, lo, hi):
    return rng.randbytes(rng.randint(lo, hi))


# --------------------------------------------------------------------------- write

async def cmd_write(d: Path, last_file_room: bool):
    cfg = make_config()
    dbdir = d / 'db'
    if dbdir.exists() and os.listdir(dbdir):
        raise SystemExit('refusing to write: %s exists and is not empty' % dbdir)
    rng = random.Random(WRITE_SEED)
    db = open_db(dbdir, cfg, create_if_not_exists=True)
    task = await start(db)
    items = []
    for n in range(200):
        loc, data = await safe_add(db, rand_bytes(rng, 1, 3000))
        items.append(item(loc, data))
        if n == 99:
            for loc, data in await tx_add(db, [rand_bytes(rng, 1, 3000) for _ in range(5)]):
                items.append(item(loc, data))
    if last_file_room:
        await db.flush()
        while last_file_is_full(db):
            loc, data = await safe_add(db, rand_bytes(rng, 1, 16))
            items.append(item(loc, data))
            await db.flush()
    else:
        while db._buffers[-1].file_size < db._max_file_size:
            loc, data = await safe_add(db, rand_bytes(rng, 1, 3000))
            items.append(item(loc, data))
    await stop(db, task)
    # read everything back with a fresh instance before handing over
    errors = []
    db = open_db(dbdir, cfg)
    task = await start(db)
    await check_items(db, items, errors, 'write read-back')
    await stop(db, task)
    if errors:
        fail(errors)
    exp = {
        'config': cfg,
        'items': items,
        'files': scan_files(dbdir, cfg),
        'notes': 'written by tests/compat/roundtrip.py write (Python aiodiskdb 0.2.3): 200 adds with '
                 'a 5-item transaction after the 100th, then %s' % (
                     'tiny items until the last file has room' if last_file_room else
                     'adds until the last data file is full (next add goes to a new index)'),
    }
    with open(d / 'expected.json', 'w') as f:
        json.dump(exp, f, indent=1)
        f.write('\n')
    print('roundtrip write ok: %d items in %d files (%s)' % (len(items), len(exp['files']), dbdir))


# --------------------------------------------------------------------------- verify

def describe(it):
    return 'item index=%d position=%d size=%d present=%s' % (
        it['index'], it['position'], it['size'], it['present'])


def overlaps(it, others):
    a0, a1 = it['position'], it['position'] + it['size']
    for o in others:
        if o['index'] == it['index'] and o['position'] < a1 and a0 < o['position'] + o['size']:
            return True
    return False


async def check_items(db, items, errors, label, superseding=(), skipped=None):
    """Returns the number of items verified; appends human readable problems to errors."""
    n = 0
    for it in items:
        try:
            got = await db.read(ItemLocation(it['index'], it['position'], it['size']))
        except Exception as e:  # noqa: BLE001 - report, don't crash
            errors.append('%s: %s: read raised %r' % (label, describe(it), e))
            continue
        if it['present']:
            want = bytes.fromhex(it['hex'])
            if got != want:
                if got is None:
                    errors.append('%s: %s: read returned None' % (label, describe(it)))
                else:
                    first = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y),
                                 min(len(got), len(want)))
                    errors.append('%s: %s: got %d bytes, first difference at byte %d (got %s, want %s)'
                                  % (label, describe(it), len(got), first,
                                     got[first:first + 8].hex(), want[first:first + 8].hex()))
                continue
        else:
            if got:
                if overlaps(it, superseding):
                    # the location was trimmed away and then legitimately reused by a later write
                    if skipped is not None:
                        skipped.append(it)
                    continue
                errors.append('%s: %s: expected absent, read returned %d bytes'
                              % (label, describe(it), len(got)))
                continue
        n += 1
    return n


def fail(errors):
    print('roundtrip FAILED: %d problem(s)' % len(errors))
    for e in errors[:50]:
        print('  ' + e)
    if len(errors) > 50:
        print('  ... and %d more' % (len(errors) - 50))
    sys.exit(1)


async def cmd_verify(d: Path):
    with open(d / 'expected.json') as f:
        exp = json.load(f)
    cfg = exp['config']
    items = exp['items']
    for k in ('index', 'position', 'size', 'hex', 'present'):
        bad = [i for i, it in enumerate(items) if k not in it]
        if bad:
            fail(['expected.json: items[%d] has no %r' % (bad[0], k)])
    dbdir = d / 'db'
    errors = []

    # pass 1: what Rust (and the first Python writer) left behind
    db = open_db(dbdir, cfg)
    task = await start(db)
    await check_items(db, items, errors, 'pass 1')
    if errors:
        await stop(db, task)
        fail(errors)

    # Python writes on top of it
    rng = random.Random(VERIFY_SEED)
    new_items = []
    for _ in range(10):
        loc, data = await safe_add(db, rand_bytes(rng, 1, 3000))
        new_items.append(item(loc, data))
    for loc, data in await tx_add(db, [rand_bytes(rng, 1, 2000) for _ in range(3)]):
        new_items.append(item(loc, data))
    for _ in range(3):
        loc, data = await safe_add(db, rand_bytes(rng, 1, 500))
        new_items.append(item(loc, data))
    await check_items(db, new_items, errors, 'pass 1 (python items, before stop)')
    await stop(db, task)
    if errors:
        fail(errors)

    # pass 2: re-open and re-read everything
    all_items = items + new_items
    db = open_db(dbdir, cfg)
    task = await start(db)
    skipped = []
    n = await check_items(db, all_items, errors, 'pass 2', superseding=new_items, skipped=skipped)
    await stop(db, task)
    if skipped:
        print('note: %d absent item(s) not checked in pass 2: their location was reused by the '
              'items Python added' % len(skipped), file=sys.stderr)
    if errors:
        fail(errors)

    final = dict(exp)
    final['items'] = all_items
    final['files'] = scan_files(dbdir, cfg)
    final['notes'] = (exp.get('notes', '') + ' | verify: Python added %d items and re-read all.'
                      % len(new_items)).strip(' |')
    with open(d / 'expected.final.json', 'w') as f:
        json.dump(final, f, indent=1)
        f.write('\n')
    print('roundtrip ok: %d items verified' % n)


def main(argv):
    if len(argv) < 2 or argv[0] not in ('write', 'verify'):
        print(__doc__)
        sys.exit(2)
    d = Path(argv[1])
    try:
        if argv[0] == 'write':
            d.mkdir(parents=True, exist_ok=True)
            asyncio.run(cmd_write(d, '--last-file-room' in argv[2:]))
        else:
            asyncio.run(cmd_verify(d))
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        print('roundtrip FAILED: exception (see above)')
        sys.exit(1)


if __name__ == '__main__':
    main(sys.argv[1:])
