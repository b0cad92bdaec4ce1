"""Internals shared with the original's ``aiodiskdb.internals``: the logger and
:class:`GracefulExit`."""

import logging

__all__ = ["GracefulExit", "logger"]


class GracefulExit(SystemExit):
    """Raised by ``AioDiskDB.on_stop_signal`` once the database is stopped, to end the
    program (exit status 1), as in the original."""

    code = 1


#: The package's logger (``aiodiskdb_rs``).
logger = logging.getLogger("aiodiskdb_rs")
