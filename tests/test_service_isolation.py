"""One organisation can neither hide, read nor poison another's data, and withdrawal leaves no
copy behind: against the real server, on SQLite and on PostgreSQL (issue 17)."""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from conftest import run_cli
from service_support import EXAMPLES, backend_target, register_photo, start_service

from counterfake.references import REGISTERED_BANK
from counterfake.signature import cfsig
from counterfake.signature.extract import make_signature
from counterfake.signature.pdq import pdq_hash

_names = itertools.count()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request, tmp_path_factory):
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("service") / "registry.db")
    else:
        db = request.getfixturevalue("postgres_server").new_database()
    running = start_service(db, tmp_path_factory.mktemp("logs"))
    yield running
    running.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db(request, tmp_path) -> str:
    """An empty registry on each backend, for a test that starts a service of its own."""
    return backend_target(request, tmp_path)


def fresh(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def repost() -> bytes:
    return (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()


def record_repost(service, platform: str) -> dict:
    with service.as_("platform", platform) as client:
        answer = client.post(
            "/match/image", files={"file": ("r.jpg", repost())}, params={"record": 1}
        )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_time_filters_honour_utc_offsets(service, photo):
    subject = fresh("offsets")
    with service.as_("registrar") as registrar:
        assert register_photo(registrar, subject, photo, "p.jpg").status_code == 200
    platform = fresh("platform")
    match_id, _ = photo_of(service, record_repost(service, platform), subject)
    with service.as_("reviewer") as reviewer:
        created = datetime.fromisoformat(reviewer.get(f"/matches/{match_id}").json()["created"])

        def listed(**bounds: datetime) -> list[int]:
            params = {name: value.isoformat() for name, value in bounds.items()}
            answer = reviewer.get("/matches", params={"platform": platform, **params})
            assert answer.status_code == 200, answer.text
            return [record["id"] for record in answer.json()]

        plus_one, minus_five = timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))
        second = timedelta(seconds=1)
        assert listed(since=(created - second).astimezone(plus_one)) == [match_id]
        assert listed(until=(created + second).astimezone(minus_five)) == [match_id]
        assert listed(since=(created + second).astimezone(plus_one)) == []
        assert listed(until=(created - second).astimezone(minus_five)) == []
        naive_utc = (created - second).astimezone(UTC).replace(tzinfo=None)
        assert listed(since=naive_utc) == [match_id]


def test_an_organisation_named_with_a_slash_is_not_a_part_of_another(service, photo):
    helpline = fresh("help")
    with service.as_("registrar", helpline) as a:
        assert a.post("/subjects", json={"name": "alice"}).status_code == 201
    with service.as_("registrar", f"{helpline}/x") as x:
        assert register_photo(x, "bob", photo, "p.jpg").status_code == 200
        assert [s["subject"] for s in x.get("/subjects").json()] == ["bob"]
    with service.as_("registrar", helpline) as a:
        assert [s["subject"] for s in a.get("/subjects").json()] == ["alice"]
        assert a.delete("/subjects/x%2Fbob").status_code in (400, 404)
    with service.as_("registrar", f"{helpline}/x") as x:
        assert x.delete("/subjects/bob").json()["deleted_signatures"] == 1


def test_registrar_uploads_are_capped_per_file_and_per_subject(fresh_db, tmp_path, photo):
    """--max-upload-signatures refuses a larger file with 413, --max-subject-photos a
    registration that would pass it with 422; neither stores anything."""
    options = ("--max-upload-signatures", "3", "--max-subject-photos", "4")
    capped = start_service(fresh_db, tmp_path, *options)
    try:
        signature = make_signature(photo, "p.jpg", "0" * 64)

        def upload(count: int, first: int) -> bytes:
            copies = [replace(signature, sha256=f"{first + n:064x}") for n in range(count)]
            return cfsig.dumps(copies)

        with capped.as_("registrar") as registrar:
            registrar.post("/subjects", json={"name": "capped"})
            answer = registrar.post(
                "/subjects/capped/signatures", files={"file": ("big.cfsig", upload(4, 0))}
            )
            assert answer.status_code == 413, answer.text
            assert answer.json() == {"error": "big.cfsig: 4 signatures; the limit is 3"}
            for first in (0, 3):
                answer = registrar.post(
                    "/subjects/capped/signatures", files={"file": ("p.cfsig", upload(2, first))}
                )
            assert answer.status_code == 200 and answer.json()["added"] == 2
            answer = registrar.post(
                "/subjects/capped/signatures", files={"file": ("p.cfsig", upload(1, 9))}
            )
            assert answer.status_code == 422, answer.text
            assert "5 photos for one subject; the limit is 4" in answer.json()["error"]
            assert registrar.get("/subjects").json() == [{"subject": "capped", "photos": 4}]
    finally:
        capped.stop()


def photo_of(service, answer: dict, subject: str) -> tuple[int, str] | None:
    """(match id, opaque photo id) of the match in ``answer`` that is ``subject``'s photo:
    other tests of this module register the same photo under other subjects."""
    with service.as_("reviewer") as reviewer:
        for found in answer["matches"]:
            record = reviewer.get(f"/matches/{found['match_id']}").json()
            if record["subject"] == f"registrar-a/{subject}":
                return found["match_id"], found["photo"]
    return None


def test_a_reviewer_may_confirm_a_rejected_match_which_lifts_its_suppression_and_is_logged(
    service, photo
):
    subject = fresh("undo")
    with service.as_("registrar") as registrar:
        assert register_photo(registrar, subject, photo, "p.jpg").status_code == 200
    platform = fresh("platform")
    match_id, _ = photo_of(service, record_repost(service, platform), subject)
    with service.as_("reviewer", "reviewers") as reviewer:
        decide = f"/matches/{match_id}/decision"
        assert reviewer.post(decide, json={"status": "rejected"}).status_code == 200
        assert photo_of(service, record_repost(service, platform), subject) is None
        assert reviewer.post(decide, json={"status": "confirmed"}).json()["status"] == "confirmed"
    assert photo_of(service, record_repost(service, platform), subject) is not None
    assert f"match {match_id}: reviewers changed rejected to confirmed" in service.log.read_text()


def stopncii(hash_hex: str, status: str) -> str:
    record = {"signalType": "ImagePDQ", "hashValue": hash_hex, "hashStatus": status}
    return json.dumps({"hashRecords": [record]})


def lookup(service, hash_hex: str, **params) -> dict:
    with service.as_("platform") as platform:
        answer = platform.get(
            "/m/lookup", params={"signal_type": "pdq", "signal": hash_hex, **params}
        )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_import_bank_belongs_to_the_organisation_that_imported_it(service):
    hash_hex = f"{next(_names) + 1000:064x}"
    a, b = fresh("bank-a"), fresh("bank-b")
    with service.as_("registrar", a) as registrar:
        answer = registrar.post(
            "/exchange/import",
            files={"file": ("a.json", stopncii(hash_hex, "Active"))},
            data={"source": "ncii"},
        )
        assert answer.json() == {"source": "ncii", "added": 1}
    with service.as_("registrar", b) as registrar:
        answer = registrar.post(
            "/exchange/import",
            files={"file": ("b.json", stopncii(hash_hex, "Deleted"))},
            data={"source": "ncii"},
        )
        assert answer.status_code == 200 and answer.json()["added"] == 0
        for reserved in ("counterfake", "Counterfake "):
            answer = registrar.post(
                "/exchange/import",
                files={"file": ("c.csv", f"{hash_hex},100\n")},
                data={"source": reserved},
            )
            assert answer.status_code == 422 and "reserved" in answer.json()["error"]
    banks = lookup(service, hash_hex)
    assert [hit["distance"] for hit in banks[f"{a}/ncii"]] == [0]
    assert REGISTERED_BANK not in banks and f"{b}/ncii" not in banks


def exported(client, **params) -> list[list[str]]:
    answer = client.get("/exchange/export", params={"format": "threatexchange", **params})
    assert answer.status_code == 200, answer.text
    return sorted(csv.reader(io.StringIO(answer.text)))[:-1]  # the header sorts last


def test_an_export_holds_only_what_its_organisation_owns_under_the_clis_references(
    service, photo, tmp_path
):
    a, b = fresh("export-a"), fresh("export-b")
    with service.as_("registrar", a) as registrar:
        assert register_photo(registrar, "alice", photo, "p.jpg").status_code == 200
        registrar.post(
            "/exchange/import", files={"file": ("l.csv", f"{7:064x},100\n")}, data={"source": "s"}
        )
        own = exported(registrar)
        with_imports = exported(registrar, imports="true")
    photo_hash = pdq_hash(photo).hex()
    [[signal_type, signal, reference, *_]] = own
    assert (signal_type, signal) == ("pdq", photo_hash) and reference.startswith("p_")
    assert sorted(row[1] for row in with_imports) == sorted([photo_hash, f"{7:064x}"])
    with service.as_("registrar", b) as registrar:
        assert exported(registrar) == [] and exported(registrar, imports="true") == []
    with service.as_("admin") as admin:
        everything = exported(admin)
    assert [signal_type, signal, reference, "", ""] in everything
    cli = run_cli(
        "exchange", "export", "-o", "cli.csv", "--format", "threatexchange", "--db", service.db,
        cwd=tmp_path,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert sorted(csv.reader((tmp_path / "cli.csv").open()))[:-1] == everything
    hits = lookup(service, photo_hash, ids="integer")[REGISTERED_BANK]  # other tests' too
    assert hits and all(isinstance(hit["bank_content_id"], int) for hit in hits)


def test_withdrawal_leaves_no_recoverable_copy_and_recorded_matches_keep_only_opaque_ids(
    fresh_db, tmp_path, photo
):
    running = start_service(fresh_db, tmp_path)
    try:
        label, subject = "withdrawn-label-4f1c.jpg", "withdrawn-subject-9a2e"
        signature = make_signature(photo, label, "ab" * 32)
        with running.as_("registrar", "helpline") as registrar:
            registrar.post("/subjects", json={"name": subject})
            upload = {"file": ("p.cfsig", cfsig.dumps([signature]))}
            assert (
                registrar.post(f"/subjects/{subject}/signatures", files=upload).status_code == 200
            )
        [recorded] = record_repost(running, "platform")["matches"]
        match_id = recorded["match_id"]
        with running.as_("reviewer") as reviewer:
            assert reviewer.post(f"/matches/{match_id}/decision", json={"status": "rejected"})
            assert reviewer.get(f"/matches/{match_id}").json()["photo"] == label
        with running.as_("registrar", "helpline") as registrar:
            assert registrar.delete(f"/subjects/{subject}").json()["deleted_signatures"] == 1
        with running.as_("reviewer") as reviewer:
            record = reviewer.get(f"/matches/{match_id}").json()
        assert record["subject"].startswith("s_") and record["photo"].startswith("p_")
        assert record["image_sha256"] == "" and record["status"] == "rejected"
        with running.as_("platform", "platform") as platform:
            seen = platform.get(f"/matches/{match_id}").json()
        assert (seen["subject"], seen["photo"]) == (recorded["subject"], recorded["photo"])
        assert (record["subject"], record["photo"]) == (recorded["subject"], recorded["photo"])
        traces = [
            label.encode(),
            subject.encode(),
            signature.pdq["original"].hex().encode(),
            signature.features.descriptors[:2].tobytes(),
        ]
        if fresh_db.startswith("postgresql"):
            with psycopg.connect(fresh_db, autocommit=True) as connection:
                vacuumed = connection.execute(
                    "SELECT relname FROM pg_stat_user_tables WHERE vacuum_count > 0"
                ).fetchall()
                assert {"photos", "photo_pdq", "match_records"} <= {name for (name,) in vacuumed}
                dumped = connection.execute("SELECT * FROM match_records").fetchall()
                assert not any(trace.decode(errors="ignore") in str(dumped) for trace in traces)
        else:  # while the server runs: the file and its write-ahead log
            files = [Path(fresh_db), Path(f"{fresh_db}-wal")]
            stored = b"".join(path.read_bytes() for path in files if path.exists())
            assert [trace for trace in traces if trace in stored] == []
    finally:
        running.stop()
