"""Following a registry: the reading side of its change feed (see registry.py).

A worker that indexes the registry reads ``head_seq`` before loading it, then applies
``changes_since`` whenever ``wait_for_change`` says something happened; ``identity`` and
``change_stamp`` tell a packed index (index/packed.py) which registry, and which point of its
history, it was taken from.
"""

from __future__ import annotations

import time
import uuid

from counterfake.db import Database, Listener, PostgresDatabase, engine_errors
from counterfake.registered import Change

CHANGES_CHANNEL = "counterfake_registry"  # what PostgreSQL NOTIFYs on a registry change
_POLL_SECONDS = 0.05  # how often SQLite's wait_for_change looks for new changes


class ChangeFeed:
    """The change feed of the registry in ``db``; Registry is one, and owns ``db``."""

    db: Database
    _listener: Listener | None = None  # PostgreSQL: the LISTEN connection, once asked
    _seen_seq: int | None = None  # SQLite: the last change number wait_for_change saw

    def head_seq(self) -> int:
        """The number of the latest change (0 if none): load the registry after reading it,
        then follow ``changes_since(head)``."""
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes")[0][0]

    def identity(self) -> str:
        """A random id given to this registry the first time it is asked for: a packed index
        (index/packed.py) names the registry it was taken from with it."""
        read = "SELECT value FROM meta WHERE key = 'registry_id'"
        rows = self.db.execute(read)
        if not rows:
            with self.db.transaction() as tx:
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('registry_id', ?) "
                    "ON CONFLICT (key) DO NOTHING",
                    (uuid.uuid4().hex,),
                )
            rows = self.db.execute(read)
        return rows[0][0]

    def change_stamp(self, seq: int) -> str:
        """Change ``seq`` as recorded ("" for 0 or a change that is not there): the same
        number with another stamp means the registry was restored or rebuilt since."""
        rows = self.db.execute(
            "SELECT action, photo_id, created FROM changes WHERE seq = ?", (seq,)
        )
        return ":".join(map(str, rows[0])) if rows else ""

    def changes_since(self, seq: int, limit: int = 10_000) -> tuple[int, list[Change]]:
        """Changes numbered above ``seq`` (at most ``limit``, oldest first), and the number to
        pass next time: the last change's, or ``seq`` itself when nothing is new."""
        rows = self.db.execute(
            "SELECT seq, action, photo_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        changes = [Change(*row) for row in rows]
        return (changes[-1].seq if changes else seq), changes

    def wait_for_change(self, timeout: float) -> bool:
        """Block until the registry changes or ``timeout`` seconds pass; True if it changed.

        PostgreSQL: LISTEN on a dedicated connection, so the change arrives as it commits.
        SQLite: look for a new change number every 50 ms. A change that lands between two
        calls is reported by the next one, never lost (on PostgreSQL, from the first call on).
        """
        if isinstance(self.db, PostgresDatabase):
            if self._listener is None:
                self._listener = self.db.listener(CHANGES_CHANNEL)
            try:
                return self._listener.wait(timeout)
            except engine_errors():  # the connection was lost: listen anew on the next call
                self._listener.close()
                self._listener = None
                raise
        if self._seen_seq is None:
            self._seen_seq = self.head_seq()
        deadline = time.monotonic() + timeout
        while True:
            head = self.head_seq()
            if head != self._seen_seq:
                self._seen_seq = head
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(_POLL_SECONDS, remaining))
