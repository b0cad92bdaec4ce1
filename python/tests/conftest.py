"""Test helpers: ``async def`` tests run in a fresh event loop (no pytest-asyncio needed),
and ``running(db)`` starts a database as its users do and stops it afterwards."""

import asyncio
import contextlib
import inspect
import os
import sys

import pytest

# A child process of the tests runs this interpreter, with the package installed.
PYTHON = sys.executable


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        asyncio.run(asyncio.wait_for(pyfuncitem.obj(**args), timeout=120))
        return True
    return None


@pytest.fixture
def path(tmp_path):
    """A data directory that does not exist yet."""
    return str(tmp_path / "db")


@contextlib.asynccontextmanager
async def running(db):
    """Runs ``db`` (as ``loop.create_task(db.run())``) and stops it on exit if still
    running; re-raises what ``run()`` raised."""
    task = asyncio.get_running_loop().create_task(db.run())
    while not db.running:
        if task.done():
            task.result()  # raises the opening error
        await asyncio.sleep(0.001)
    try:
        yield task
    finally:
        if db.running:
            await db.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


def child_env():
    """The environment of a child Python: unbuffered output."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env
