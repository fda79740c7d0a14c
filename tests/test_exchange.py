"""PDQ hash exchange: every format round-trips, samples shaped like each programme's files are
read, every malformed input is one clear error naming the file and line, and the index answers
exactly what comparing every hash would."""

from __future__ import annotations

import io
import json
import re
import threading

import numpy as np
import pytest
from conftest import EXAMPLES, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from counterfake.exchange import (
    FORMATS,
    ExchangeFormatError,
    PdqRecord,
    read_pdq_records,
    write_pdq_records,
)
from counterfake.index.pdq import PdqIndex
from counterfake.registry import Registry

A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"  # Meta's README example
B = "2afc4a5c09628a7961c14d436493bba66b89b831453baa1d556ba385554daa82"
C = "79e07de27d7295339435d63cd31cf35a7bfa29eb2885008500a588a5ea3ae75a"
RECORDS = [PdqRecord(A, 100, "case-1"), PdqRecord(B, 62, "case-2"), PdqRecord(C, 51, None)]


def read(tmp_path, text: str, name: str = "hashes.txt") -> list[PdqRecord]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return list(read_pdq_records(path))


@pytest.mark.parametrize("format", FORMATS)
def test_every_format_round_trips_its_hashes(tmp_path, format):
    path = tmp_path / f"out.{format}"
    with path.open("w", encoding="utf-8", newline="") as out:
        assert write_pdq_records(RECORDS, out, format) == 3
    back = list(read_pdq_records(path))
    assert [r.hash_hex for r in back] == [A, B, C]
    if format in ("stopncii", "pdq"):  # the two that carry the quality
        assert [r.quality for r in back] == [100, 62, 51]
    else:
        assert {r.quality for r in back} == {None}
    if format != "hma":  # HMA's file needs an indicator id: an unnamed hash gets its row number
        assert [r.ref for r in back] == ["case-1", "case-2", None]


def test_stopncii_records_of_other_types_are_passed_over_and_withdrawn_ones_marked(tmp_path):
    document = {
        "count": 4,
        "nextPageToken": None,
        "nextSetTimestamp": 1625175071,
        "hasMoreRecords": False,
        "hashRecords": [
            {
                "lastModtimestamp": 1625167804,
                "hashValue": A.upper(),
                "hashStatus": "Received",
                "caseNumbers": {"27664732-76e1": "Received", "a2696edf-1237": "Received"},
                "signalType": "ImagePDQ",
            },
            {"hashValue": "d41d8cd98f00b204e9800998ecf8427e", "signalType": "VideoMD5"},
            {"hashValue": B, "signalType": "ImagePDQ", "hashStatus": "Withdrawn"},
            {"hashValue": C, "signalType": "ImagePDQ", "hashStatus": "Active", "CSPFeedbacks": []},
        ],
    }
    records = read(tmp_path, json.dumps(document), "fetch.json")
    assert records == [
        PdqRecord(A, None, "27664732-76e1,a2696edf-1237"),
        PdqRecord(B, None, withdrawn=True),
        PdqRecord(C, None),
    ]


def test_threatexchange_csv_keeps_only_pdq_signals(tmp_path):
    text = (
        "signal_type,signal_str,collab,category,tags\n"
        f"pdq,{A},Sample Signals,INVESTIGATION_SEED,\n"
        "url,https://example.com/x,Sample Signals,INVESTIGATION_SEED,spam\n"
        f"pdq,{B},Other Collab,,tag1 tag2\n"
    )
    assert read(tmp_path, text, "dataset.csv") == [
        PdqRecord(A, None, "Sample Signals"),
        PdqRecord(B, None, "Other Collab"),
    ]


def test_hma_data_file_rows(tmp_path):
    text = f"{A},1234567890,6789,2021-07-01,tag1 tag2\n{B},987,1,2021-07-02,\n"
    assert read(tmp_path, text, "simple.HASH_PDQ.te") == [
        PdqRecord(A, None, "1234567890"),
        PdqRecord(B, None, "987"),
    ]


def test_pdq_photo_hasher_output_in_both_forms_and_bare_hashes(tmp_path):
    text = (
        f"{A},100,file1.jpg\n"
        f"hash={B},norm=128,delta=124,quality=87,filename=file2.jpg\n"
        f"{C}\n"
        "\n"
        f"  {A.upper()} ,55\n"
    )
    assert read(tmp_path, text) == [
        PdqRecord(A, 100, "file1.jpg"),
        PdqRecord(B, 87, "file2.jpg"),
        PdqRecord(C, None),
        PdqRecord(A, 55),
    ]


def test_empty_file_has_no_hashes(tmp_path):
    assert read(tmp_path, "\n  \n") == []


def test_text_and_streams_are_read_like_files():
    text = f"{A},100,upload.jpg\n{B}\n"
    expected = [PdqRecord(A, 100, "upload.jpg"), PdqRecord(B, None)]
    assert list(read_pdq_records(text, name="upload")) == expected
    assert list(read_pdq_records(io.StringIO(text))) == expected
    with pytest.raises(ExchangeFormatError, match=r"^upload: line 1: 'x' is not a PDQ hash"):
        list(read_pdq_records("x,1\n", name="upload"))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"{A},100\n{A[:-1]},100\n", "line 2: '.*' is not a PDQ hash"),
        (f"{A}\n{A[:-1]}g\n", "line 2: '.*g' is not a PDQ hash"),
        (f"{A},high\n", "line 1: quality 'high' is not a whole number"),
        (f"{A},101\n", "line 1: quality 101 is not in 0..100"),
        (f"{A},100,a.jpg,extra\n", "line 1: 4 fields; expected hash"),
        (f"hash={A},norm=128\n", "line 1: a 'hash=' line without 'quality='"),
        (f'{A},100,"unclosed\n', "line 1: not a CSV row"),
        (f"{A},1,2,2021-07-01,x\n{B},1,two,2021-07-01,x\n", "line 2: descriptor id 'two'"),
        (f"{A},1,2,2021-07-01,x\n{B},1,2\n", "line 2: 3 fields; expected hash,indicator_id"),
        ("signal_type,signal_str,collab,category,tags\npdq,xyz,c,,\n", "line 2: 'xyz' is not"),
        ("signal_type,signal_str,collab,category,tags\n\npdq,x\n", "line 3: 2 fields"),
        ("signal_type,signal_str,collab,category,tags\n,abc,c,,\n", "line 2: no signal_type"),
        ('{"hashRecords": [\n  {"hashValue": "a"\n', "line 3: not valid JSON"),
        ('{"records": []}', "no 'hashRecords' list"),
        ('{"hashRecords": [42]}', r"hashRecords\[0\]: a record must be a JSON object"),
        (
            json.dumps(
                {"hashRecords": [{"signalType": "ImagePDQ", "hashValue": A, "hashStatus": 1}]}
            ),
            r"\[0\]: unknown hashStatus '1'",
        ),
        ('{"hashRecords": [{"signalType": "ImagePDQ"}]}', r"\[0\]: 'hashValue' is missing"),
        ('{"hashRecords": [{"signalType": "ImagePDQ", "hashValue": "ab"}]}', r"\[0\]: 'ab' is not"),
        (
            json.dumps(
                {"hashRecords": [{"signalType": "ImagePDQ", "hashValue": A, "quality": "x"}]}
            ),
            r"\[0\]: 'quality' must be a whole number",
        ),
    ],
)
def test_malformed_input_is_one_error_naming_file_and_line(tmp_path, text, problem):
    with pytest.raises(
        ExchangeFormatError, match=f"^{tmp_path / 'bad.txt'}: .*{problem}"
    ) as caught:
        read(tmp_path, text, "bad.txt")
    assert "\n" not in str(caught.value)


def test_binary_and_missing_files_are_clear_errors(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)))
    with pytest.raises(ExchangeFormatError, match=r"photo\.jpg: not a text file"):
        list(read_pdq_records(tmp_path / "photo.jpg"))
    with pytest.raises(ExchangeFormatError, match=r"nothing\.csv: cannot be read"):
        list(read_pdq_records(tmp_path / "nothing.csv"))


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        write_pdq_records(RECORDS, io.StringIO(), "csv")


# ---- the index ------------------------------------------------------------------------------


def flip(code: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    unpacked = np.unpackbits(code)
    unpacked[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(unpacked)


def brute_force(codes: dict[str, np.ndarray], query: np.ndarray, most: int) -> list:
    found = [(k, int(np.unpackbits(c ^ query).sum())) for k, c in codes.items()]
    return sorted((k, d) for k, d in found if d <= most)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(0, 9000), bits=st.integers(0, 45))
def test_index_answers_exactly_what_comparing_every_hash_answers(seed, size, bits):
    """Near hashes are planted at every distance; 9000 rows cross the first table build."""
    rng = np.random.default_rng(seed)
    codes = {f"k{i}": rng.integers(0, 256, 32, dtype=np.uint8) for i in range(size)}
    query = rng.integers(0, 256, 32, dtype=np.uint8)
    for distance in range(0, 40, 3):
        codes[f"near{distance}"] = flip(query, distance, rng)
    index = PdqIndex()
    index.add_many((key, code.tobytes().hex()) for key, code in codes.items())
    answer = index.lookup(query.tobytes().hex(), max_distance=bits)
    assert sorted(answer) == brute_force(codes, query, bits)
    assert [d for _, d in answer] == sorted(d for _, d in answer)


def test_removed_and_replaced_keys_answer_at_once(tmp_path):
    index = PdqIndex()
    index.add_many((f"k{i}", f"{i:064x}") for i in range(5000))  # built tables...
    index.add("fresh", A)  # ...and a newer row beside them
    assert index.lookup(A) == [("fresh", 0)]
    index.remove("fresh")
    index.remove("k7")
    index.remove("never there")
    assert index.lookup(A) == [] and ("k7", 0) not in index.lookup(f"{7:064x}")
    index.add("k8", A)  # replaces k8's old hash
    assert index.lookup(A) == [("k8", 0)] and ("k8", 0) not in index.lookup(f"{8:064x}")
    assert len(index) == 5000 - 1


def test_index_is_safe_to_share_between_threads():
    index = PdqIndex()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        for i in range(3000):
            index.add(f"{n}-{i}", f"{n * 100_000 + i:064x}")

    def reader() -> None:
        try:
            for _ in range(300):
                for key, _ in index.lookup(f"{5:064x}", max_distance=8):
                    assert isinstance(key, str)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(index) == 9000
    assert ("1-5", 0) in index.lookup(f"{100_005:064x}")


@pytest.mark.parametrize("bad", ["", "xyz", A[:-1], A + "0", A[:-1] + " "])
def test_index_refuses_what_is_not_a_pdq_hash(bad):
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        PdqIndex().add("k", bad)


# ---- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize("format", FORMATS)
def test_exported_hashes_import_elsewhere_and_find_the_photo(tmp_path, format, registry_target):
    helpline = str(tmp_path / "helpline.db")
    photo = str(EXAMPLES / "registered" / "photo.jpg")
    assert (
        run_cli("register", photo, "--subject", "alice", "--db", helpline, cwd=tmp_path).returncode
        == 0
    )
    exported = run_cli(
        "exchange", "export", "-o", "out", "--format", format, "--db", helpline, cwd=tmp_path
    )
    assert exported.returncode == 0 and "exported 1 PDQ hash(es)" in exported.stdout
    shared = (tmp_path / "out").read_text()
    assert "alice" not in shared and "photo.jpg" not in shared  # opaque references only
    assert "counterfake-photo" not in shared and re.search(r"\bp_[0-9a-f]{24}\b", shared)

    imported = run_cli(
        "exchange", "import", "out", "--source", "partner", "--db", registry_target, cwd=tmp_path
    )
    assert imported.returncode == 0 and "imported 1 PDQ hash(es)" in imported.stdout
    again = run_cli(
        "exchange", "import", "out", "--source", "partner", "--db", registry_target, cwd=tmp_path
    )
    assert "imported 0 PDQ hash(es)" in again.stdout and "1 already held" in again.stdout

    looked = run_cli("exchange", "lookup", photo, "--db", registry_target, cwd=tmp_path)
    assert looked.returncode == 0, looked.stderr
    assert "1 match(es)" in looked.stdout and "from partner" in looked.stdout
    assert "distance 0" in looked.stdout


def test_lookup_by_hash_finds_a_mirrored_repost_through_the_dihedral_hashes(tmp_path, photo):
    from counterfake.signature.pdq import pdq_hash

    db = str(tmp_path / "r.db")
    run_cli(
        "register", str(EXAMPLES / "registered"), "--subject", "alice", "--db", db, cwd=tmp_path
    )
    mirrored = pdq_hash(np.ascontiguousarray(photo[:, ::-1])).hex()
    looked = run_cli("exchange", "lookup", mirrored, "--db", db, cwd=tmp_path)
    assert "1 match(es)" in looked.stdout and "(alice)" in looked.stdout


def test_malformed_import_is_one_line_exit_2_and_stores_nothing(tmp_path, registry_target):
    (tmp_path / "list.txt").write_text(f"{A},90\n{B},90\nnot-a-hash,90\n")
    result = run_cli(
        "exchange", "import", "list.txt", "--source", "x", "--db", registry_target, cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "counterfake: list.txt: line 3: 'not-a-hash' is not a PDQ hash (64 hex digits)"
    )
    with Registry(registry_target) as registry:
        assert list(registry.pdq_hashes()) == []


def test_lookup_of_something_that_is_neither_hash_nor_file(tmp_path):
    result = run_cli("exchange", "lookup", "cafe", "--db", str(tmp_path / "r.db"), cwd=tmp_path)
    assert result.returncode == 2 and "cafe: neither a PDQ hash nor a file" in result.stderr
