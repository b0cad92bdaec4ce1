"""A database that does nothing: items in a Python dict, every method a coroutine that
returns at once. Run by workloads.py as the library ``nulldb``, it measures the ceiling
that the workload's own code and asyncio put on any library (what ``mixed`` can reach)."""

import asyncio


class ItemLocation:
    __slots__ = ("index", "position", "size")

    def __init__(self, index, position, size):
        self.index, self.position, self.size = index, position, size


class AioDiskDB:
    def __init__(self, path, **_):
        self.items = {}
        self.end = 0
        self.running = False
        self._stopped = None

    async def run(self):
        self._stopped = asyncio.get_running_loop().create_future()
        self.running = True
        await self._stopped

    async def add(self, data):
        loc = ItemLocation(0, self.end, len(data))
        self.items[self.end] = data
        self.end += len(data)
        return loc

    async def read(self, loc):
        return self.items.get(loc.position)

    async def stop(self):
        self.running = False
        self._stopped.set_result(None)
        return True
