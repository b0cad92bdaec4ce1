"""aiodiskdb_rs: the API of aiodiskdb 0.2.x on a Rust engine.

Switching is a change of import::

    import aiodiskdb_rs as aiodiskdb
    from aiodiskdb_rs import AioDiskDB, ItemLocation
    from aiodiskdb_rs.local_types import WriteEvent
    from aiodiskdb_rs import exceptions

The data directory format is the original's: a directory written by one library opens
with the other after a clean stop. What differs (items are fsynced before they count as
written, one process per directory, new exceptions) is listed in the package README.
"""

from aiodiskdb_rs import exceptions, local_types
from aiodiskdb_rs._native import AioDiskDBTransaction
from aiodiskdb_rs.aiodiskdb import AioDiskDB
from aiodiskdb_rs.local_types import ItemLocation, WriteEvent

__all__ = [
    "AioDiskDB",
    "AioDiskDBTransaction",
    "ItemLocation",
    "WriteEvent",
    "exceptions",
    "local_types",
]
__version__ = "0.1.0"
