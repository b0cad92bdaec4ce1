"""The exceptions of ``aiodiskdb_rs``: those of ``aiodiskdb.exceptions`` (same names, same
base class, same hierarchy), and new ones for what the original library did not report.

Every exception the engine raises is an :class:`AioDiskDBException`; its message says what
was wrong, with the value or path. A new class derives from the original class that code
written for ``aiodiskdb`` would already catch for the same condition (for instance
:class:`ItemTooLargeException` is a :class:`WriteFailedException`, as the original raised
for an item larger than the buffer).
"""

__all__ = [
    "AioDiskDBException",
    "RunningException",
    "NotRunningException",
    "TimeoutException",
    "ReadTimeoutException",
    "DBNotInitializedException",
    "InvalidDataFileException",
    "ReadOnlyDatabaseException",
    "FilesInconsistencyException",
    "WriteFailedException",
    "InvalidConfigurationException",
    "EmptyTransactionException",
    "TransactionCommitOnGoingException",
    "TransactionAlreadyCommittedException",
    "InvalidDBStateException",
    "IndexDoesNotExist",
    "EmptyPayloadException",
    "InvalidTrimCommandException",
    "ItemTooLargeException",
    "DatabaseFullException",
    "DatabaseLockedException",
    "CorruptedDataException",
    "NotStoredException",
    "InvalidLocationException",
    "DiskIOException",
]


class AioDiskDBException(Exception):
    """Base class of every exception of the database."""


class RunningException(AioDiskDBException):
    """The database is running and must be stopped first (``destroy_db``)."""


class NotRunningException(AioDiskDBException):
    """The database is not running: not started yet, stopped, or started twice."""


class TimeoutException(AioDiskDBException):
    """Waited longer than ``timeout`` (for buffer space in ``add``, or for ``stop``)."""


class ReadTimeoutException(AioDiskDBException):
    """Kept for compatibility: the original defines it; the engine never raises it."""


class DBNotInitializedException(AioDiskDBException):
    """Kept for compatibility: the original defines it; the engine never raises it."""


class InvalidDataFileException(AioDiskDBException):
    """A data file is not an aiodiskdb data file of this configuration (bad header)."""


class ReadOnlyDatabaseException(AioDiskDBException):
    """A trim, ``drop_index`` or ``destroy_db`` without ``enable_overwrite()`` first."""


class FilesInconsistencyException(AioDiskDBException):
    """The files on disk disagree with what the database committed (a file truncated,
    extended, zeroed or deleted behind its back)."""


class WriteFailedException(AioDiskDBException):
    """An item could not be written."""


class InvalidConfigurationException(AioDiskDBException):
    """A constructor argument has a value the database cannot work with."""


class EmptyTransactionException(AioDiskDBException):
    """``commit()`` of a transaction with no items."""


class TransactionCommitOnGoingException(AioDiskDBException):
    """``add`` or ``commit`` on a transaction whose commit is running."""


class TransactionAlreadyCommittedException(AioDiskDBException):
    """``add`` or ``commit`` on a transaction already committed."""


class InvalidDBStateException(AioDiskDBException):
    """The database refuses writes after a failed write or sync (reopen it to recover),
    or found a state it cannot continue from."""


class IndexDoesNotExist(AioDiskDBException):
    """The data file of this index does not exist."""


class EmptyPayloadException(AioDiskDBException):
    """Empty items cannot be stored."""


class InvalidTrimCommandException(AioDiskDBException):
    """A trim that does not fit the index: a position out of range, or a failed safety
    check. Nothing was changed."""


# New: what the original did not report, or reported with a less precise class.


class ItemTooLargeException(WriteFailedException):
    """New: an item larger than ``max_buffer_size`` (``add``) or than a fresh data file
    (transactions). The original raised ``WriteFailedException``."""


class DatabaseFullException(WriteFailedException):
    """New: no more file indexes fit in ``file_padding`` digits."""


class DatabaseLockedException(AioDiskDBException):
    """New: another process, or another running ``AioDiskDB`` of this process, holds the
    directory. The original did not lock its directory."""


class CorruptedDataException(AioDiskDBException):
    """New: the bytes stored at an item's location do not match the CRC32C written with
    them. Nothing is returned; the original returned whatever the file held."""


class NotStoredException(AioDiskDBException):
    """New: ``wait_persisted`` of a location that is neither stored nor buffered."""


class InvalidLocationException(AioDiskDBException, ValueError):
    """New: ``ItemLocation.deserialize`` of anything but 12 bytes."""


class DiskIOException(AioDiskDBException, OSError):
    """New: the operating system failed an I/O operation (``errno``, ``strerror`` and
    ``filename`` are set as for ``OSError``). A failed write or sync also makes the
    database refuse further writes until it is reopened."""
