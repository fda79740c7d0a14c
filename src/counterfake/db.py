"""One small connection layer over SQLite (a file, the default) and PostgreSQL (a URL).

The registry, the API keys and the service's tables are written once, in SQL that both engines
accept: "?" placeholders everywhere (translated to psycopg's "%s" here), ``INSERT ... ON
CONFLICT DO NOTHING`` and ``RETURNING`` instead of engine-specific forms, and two placeholders
in DDL, ``{SERIAL_PK}`` and ``{BLOB}``, formatted per engine. Everything engine-specific (WAL
mode, advisory locks, NOTIFY) lives here and nowhere else.

Each thread gets its own connection, opened on first use: a SQLite connection must not cross
threads, and a PostgreSQL connection runs one transaction at a time, so a threaded server would
otherwise serialise on it.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_SCHEMA_LOCK = 0x6366_0001  # advisory lock keys are shared by the whole server: ours start "cf"
_DDL = {
    # AUTOINCREMENT: SQLite would otherwise hand a withdrawn photo's id to the next one, and a
    # recorded match or a change-feed entry would then name the wrong photo.
    "sqlite": {"SERIAL_PK": "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB": "BLOB"},
    "postgresql": {"SERIAL_PK": "BIGSERIAL PRIMARY KEY", "BLOB": "BYTEA"},
}


class DatabaseError(Exception):
    """The database cannot be opened or used; the message is one line naming it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class Cursor(Protocol):
    """What both engines' cursors offer (rows are tuples; ``fetchone`` is None past the end)."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


def engine_errors() -> tuple[type[Exception], ...]:
    """What a statement may raise, on either engine.

    psycopg is imported only when a PostgreSQL database is opened, which keeps the default
    SQLite command line quick to start; until then no psycopg error can occur.
    """
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error, psycopg.Error) if psycopg else (sqlite3.Error,)


def is_postgres_url(target: str | object) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def display_name(target: str | object) -> str:
    """How to name the database in messages and reports: a URL without its password, or the
    file's absolute path."""
    text = str(target)
    if not is_postgres_url(text):
        return str(Path(text).absolute())
    parts = urlsplit(text)
    if parts.password is not None:
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    query = [
        (key, "***" if key == "password" else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def connect(target: str | object) -> Database:
    """A SQLite file path (created if missing) or a ``postgresql://`` URL."""
    if is_postgres_url(target):
        return PostgresDatabase(str(target))
    return SqliteDatabase(str(target))


def to_pyformat(sql: str) -> str:
    """Translate "?" placeholders to psycopg's "%s" (and escape literal "%"), outside quotes."""
    out = []
    quote = None
    for char in sql:
        if quote:
            if char == quote:
                quote = None
            out.append("%%" if char == "%" else char)
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        else:
            out.append("%%" if char == "%" else char)
    return "".join(out)


class Transaction:
    """What a ``with db.transaction() as tx`` block writes through."""

    def __init__(self, database: Database, connection: Any) -> None:
        self._database = database
        self._connection = connection

    def execute(self, sql: str, params: Sequence = ()) -> Cursor:
        return self._database._execute_on(self._connection, sql, params)

    def lock(self, key: int) -> None:
        """Serialise writers that take the same key until this transaction ends.

        A change feed read by ``seq > last`` must see sequence numbers commit in order; on
        PostgreSQL two writers could otherwise commit seq 8 before seq 7. SQLite already runs
        one writing transaction at a time (BEGIN IMMEDIATE), so there it costs nothing.
        """
        if self._database.backend == "postgresql":
            self.execute("SELECT pg_advisory_xact_lock(?)", (key,))

    def notify(self, channel: str, payload: str) -> None:
        """Tell listeners on commit (PostgreSQL NOTIFY); nothing is sent if the block fails."""
        if self._database.backend == "postgresql":
            self.execute("SELECT pg_notify(?, ?)", (channel, payload))


class Database:
    """A database shared by the threads of one process; see :func:`connect`."""

    backend: str

    def __init__(self, target: str) -> None:
        self.target = target
        self.name = display_name(target)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Any] = []
        self._closed = False
        self._connection()  # fail now, with a clear message, if it cannot be opened

    # ---- per-engine parts
    def _open(self) -> Any:
        raise NotImplementedError

    def _execute_on(self, connection: Any, sql: str, params: Sequence) -> Cursor:
        raise NotImplementedError

    @contextmanager
    def _transaction_on(self, connection: Any) -> Iterator[None]:
        raise NotImplementedError
        yield

    # ---- the shared interface
    def _lost(self, connection: Any) -> bool:
        """True when the server dropped the connection (restart, failover, idle timeout)."""
        return False

    def _connection(self) -> Any:
        """This thread's connection; a lost one is replaced, so after a database restart only
        the statement that met the loss fails."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._lost(connection):
            with self._lock:
                self._connections.remove(connection)
            connection = None
        if connection is None:
            if self._closed:
                raise DatabaseError(self.name, "the database was closed")
            connection = self._open()
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        connection = self._connection()
        if getattr(self._local, "in_transaction", False):
            raise DatabaseError(self.name, "transactions cannot be nested")
        self._local.in_transaction = True
        try:
            with self._transaction_on(connection):
                yield Transaction(self, connection)
        finally:
            self._local.in_transaction = False

    def execute(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Run one statement on its own (autocommit) and return its rows, if any."""
        cursor = self._execute_on(self._connection(), sql, params)
        return cursor.fetchall() if cursor.description else []

    def ensure_schema(self, statements: Sequence[str]) -> None:
        """Create what is missing, in one transaction; ``{SERIAL_PK}`` and ``{BLOB}`` are
        formatted for this engine."""
        with self.transaction() as tx:
            tx.lock(_SCHEMA_LOCK)  # two processes creating the same tables at once
            for statement in statements:
                tx.execute(statement.format(**_DDL[self.backend]))

    def ensure_columns(self, table: str, columns: dict[str, str]) -> None:
        """Add the ``columns`` (name -> definition) a table made by an earlier release lacks,
        in one transaction under the same lock as :meth:`ensure_schema`."""
        with self.transaction() as tx:
            tx.lock(_SCHEMA_LOCK)
            held = {d[0] for d in tx.execute(f"SELECT * FROM {table} LIMIT 0").description}
            for name, definition in columns.items():
                if name not in held:
                    tx.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")

    def purge(self, tables: Sequence[str]) -> None:
        """Leave no recoverable copy of rows deleted from ``tables``, as far as the engine can.

        SQLite overwrites deleted content with zeros (``secure_delete``, set on every
        connection) and here copies the write-ahead log into the file and truncates it, so the
        log no longer holds the deleted rows' earlier versions. PostgreSQL's VACUUM removes the
        dead row versions from the tables and their TOAST storage and lets the space be
        reused; it does not overwrite it at once, and the server's own WAL segments keep the
        old versions until they are recycled (see docs/service.md).
        """
        raise NotImplementedError

    def notify(self, channel: str, payload: str) -> None:
        """PostgreSQL NOTIFY, sent at once; SQLite has no listeners, so nothing happens."""
        if self.backend == "postgresql":
            self.execute("SELECT pg_notify(?, ?)", (channel, payload))

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteDatabase(Database):
    """A SQLite file in WAL mode, so that readers go on while one transaction writes."""

    backend = "sqlite"

    def _open(self) -> sqlite3.Connection:
        if Path(self.target).is_dir():
            raise DatabaseError(self.target, "is a directory, not a database file")
        try:
            connection = sqlite3.connect(
                self.target, isolation_level=None, timeout=30, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA secure_delete=ON")  # withdrawn rows are zeroed
        except sqlite3.Error as error:
            raise DatabaseError(self.target, f"cannot be opened as SQLite ({error})") from None
        return connection

    def _execute_on(self, connection: sqlite3.Connection, sql: str, params: Sequence) -> Cursor:
        return connection.execute(sql, tuple(params))

    def purge(self, tables: Sequence[str]) -> None:
        """Checkpoint the log into the file and truncate it, waiting (up to the connection's
        30 s busy timeout) for readers to finish; a reader that outlasts it is logged."""
        [(busy, _, _)] = self.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if busy:
            log.warning("%s: a reader kept the write-ahead log from being truncated", self.name)

    @contextmanager
    def _transaction_on(self, connection: sqlite3.Connection) -> Iterator[None]:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


class PostgresDatabase(Database):
    """A PostgreSQL database through psycopg 3, one autocommit connection per thread."""

    backend = "postgresql"

    def _open(self) -> psycopg.Connection:
        import psycopg

        try:
            return psycopg.connect(self.target, autocommit=True, connect_timeout=10)
        except psycopg.Error as error:
            problem = " ".join(str(error).split())
            raise DatabaseError(self.name, f"cannot connect ({problem})") from None

    def _lost(self, connection: Any) -> bool:
        return connection.closed or connection.broken

    def _execute_on(self, connection: Any, sql: str, params: Sequence) -> Cursor:
        return connection.execute(to_pyformat(sql), tuple(params))

    def purge(self, tables: Sequence[str]) -> None:
        """VACUUM each table (outside any transaction: this thread's connection autocommits)."""
        from psycopg import sql as pgsql

        connection = self._connection()
        for table in tables:
            connection.execute(pgsql.SQL("VACUUM {}").format(pgsql.Identifier(table)))

    @contextmanager
    def _transaction_on(self, connection: Any) -> Iterator[None]:
        with connection.transaction():
            yield

    def listener(self, channel: str) -> Listener:
        """A dedicated connection that LISTENs on ``channel``."""
        return Listener(self.target, channel)


class Listener:
    """A PostgreSQL connection of its own, listening on one channel.

    Notifications that arrive between two waits are queued by the server connection and not
    lost, so a follower that waits, reads the changes, and waits again misses nothing.
    """

    def __init__(self, target: str, channel: str) -> None:
        import psycopg
        from psycopg import sql as pgsql

        self._connection = psycopg.connect(target, autocommit=True, connect_timeout=10)
        self._connection.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(channel)))

    def wait(self, timeout: float) -> bool:
        """True if at least one notification came within ``timeout`` seconds."""
        for _ in self._connection.notifies(timeout=timeout, stop_after=1):
            return True
        return False

    def close(self) -> None:
        self._connection.close()
