"""The connection layer: one SQL dialect on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading

import pytest

from counterfake.db import DatabaseError, connect, display_name, to_pyformat

SCHEMA = ("CREATE TABLE IF NOT EXISTS notes (id {SERIAL_PK}, body TEXT NOT NULL, data {BLOB})",)


@pytest.fixture
def db(registry_target):
    with connect(registry_target) as database:
        database.ensure_schema(SCHEMA)
        database.ensure_schema(SCHEMA)  # a second time changes nothing
        yield database


def test_question_marks_become_pyformat_outside_quotes():
    assert to_pyformat("SELECT ? WHERE a LIKE '50%?' AND b = ?") == (
        "SELECT %s WHERE a LIKE '50%%?' AND b = %s"
    )


def test_values_round_trip_with_placeholders(db):
    db.execute("INSERT INTO notes (body, data) VALUES (?, ?)", ("it's 100% ?", b"\x00\xff"))
    assert db.execute("SELECT body, data FROM notes") == [("it's 100% ?", b"\x00\xff")]


def test_transaction_commits_or_rolls_back_as_a_whole(db):
    with db.transaction() as tx:
        [(first,)] = tx.execute(
            "INSERT INTO notes (body) VALUES (?) RETURNING id", ("a",)
        ).fetchall()
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO notes (body) VALUES (?)", ("b",))
        raise RuntimeError("interrupted")
    assert db.execute("SELECT id, body FROM notes") == [(first, "a")]


def test_transactions_do_not_nest(db):
    with (
        db.transaction(),
        pytest.raises(DatabaseError, match="cannot be nested"),
        db.transaction(),
    ):
        pass


def test_each_thread_has_its_own_connection(db):
    def write(n: int) -> None:
        for i in range(20):
            with db.transaction() as tx:
                tx.execute("INSERT INTO notes (body) VALUES (?)", (f"{n}-{i}",))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert db.execute("SELECT COUNT(*) FROM notes") == [(80,)]


def test_ids_of_deleted_rows_are_not_reused(db):
    [(first,)] = db.execute("INSERT INTO notes (body) VALUES ('a') RETURNING id")
    db.execute("DELETE FROM notes")
    [(second,)] = db.execute("INSERT INTO notes (body) VALUES ('b') RETURNING id")
    assert second > first


def test_notify_reaches_a_listener(postgres_db):
    with connect(postgres_db) as database:
        listener = database.listener("counterfake_test")
        try:
            assert listener.wait(0.1) is False
            database.notify("counterfake_test", "hello")
            assert listener.wait(5) is True
        finally:
            listener.close()


def test_display_name_hides_passwords():
    assert display_name("postgresql://u:pw@db.example:5433/reg") == (
        "postgresql://u:***@db.example:5433/reg"
    )
    assert "pw" not in display_name("postgresql://db/reg?sslmode=require&password=pw")
    assert display_name("postgresql://db/reg") == "postgresql://db/reg"
