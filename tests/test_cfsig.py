"""The .cfsig format: round-trips exactly and refuses damaged or foreign files clearly."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from old_signatures import old_dumps

from counterfake.signature import cfsig, record
from counterfake.signature.extract import make_signature


@pytest.fixture(scope="module")
def signature(photo):
    return make_signature(photo, label="my photos/beach.jpg", sha256="ab" * 32)


@pytest.fixture(scope="module")
def scanned(photo):
    """A signature made to be matched (``hash --mirror``): it holds its mirror image's too."""
    return make_signature(photo, label="upload.jpg", sha256="cd" * 32, mirror=True)


def assert_stored_form_of(back, signature, side="features"):
    """``back`` holds the first features of ``signature`` as a record keeps them: positions to
    1/16 pixel, orientations to the 1/32 turn, levels, sizes and descriptors as they were."""
    kept, made = getattr(back, side), getattr(signature, side)
    count = len(kept)
    assert 200 <= count <= len(made)
    np.testing.assert_allclose(kept.xy, made.xy[:count], atol=1 / 16 + 1e-6)
    np.testing.assert_allclose(kept.size, made.size[:count], rtol=1e-6)
    np.testing.assert_array_equal(kept.octave, made.octave[:count])
    np.testing.assert_array_equal(kept.descriptors, made.descriptors[:count])
    turns = (kept.angle - made.angle[:count] + 180) % 360 - 180
    assert np.abs(turns).max() <= 360 / 32


def test_round_trip_keeps_every_field(signature, tmp_path):
    path = tmp_path / "alice.cfsig"
    cfsig.write(path, [signature, signature])
    loaded = cfsig.read(path)
    assert len(loaded) == 2
    back = loaded[0]
    assert (back.label, back.sha256, back.width, back.height) == (
        signature.label,
        signature.sha256,
        signature.width,
        signature.height,
    )
    assert {k: h.hex() for k, h in back.pdq.items()} == {
        k: h.hex() for k, h in signature.pdq.items()
    }
    np.testing.assert_array_equal(back.grid, signature.grid)
    np.testing.assert_array_equal(back.face, signature.face)
    assert_stored_form_of(back, signature)
    assert len(back.mirrored) == 0


def test_a_scanned_signature_keeps_all_its_features_and_its_mirror_image(scanned):
    """A signature to be matched is never stored: the budget does not cut it; registered, it
    keeps what fits."""
    back = cfsig.loads(cfsig.dumps([scanned]), "upload.cfsig")[0]
    assert_stored_form_of(back, scanned)
    assert_stored_form_of(back, scanned, "mirrored")
    assert len(back.features) == len(back.mirrored) == len(scanned.features) == 512
    stored = record.decode(record.encode(back))
    assert len(record.encode(back)) <= record.RECORD_BUDGET and len(stored.mirrored) == 0


def test_a_signature_file_is_its_record_and_a_line(signature):
    """The file is its record plus a line of header: far too small to hold the 480x640 photo
    it came from."""
    size = len(cfsig.dumps([signature]))
    assert size <= record.RECORD_BUDGET + 400
    assert len(record.encode(signature)) <= record.RECORD_BUDGET
    assert signature.grid.shape == (48, 48, 4)


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_file_is_read_and_converted(signature, scanned, version):
    """Files written before the compact record (versions 1 and 2) still load, mirror image and
    all; what is registered from them is stored in the compact form (tests/test_registry.py)."""
    loaded = cfsig.loads(old_dumps([scanned], version), "old.cfsig")[0]
    for side in ("features", "mirrored"):
        for field in ("xy", "size", "angle", "octave", "descriptors"):
            np.testing.assert_array_equal(
                getattr(getattr(loaded, side), field), getattr(getattr(scanned, side), field)
            )
    assert len(record.encode(loaded)) <= record.RECORD_BUDGET


def test_empty_file_list_round_trips(tmp_path):
    cfsig.write(tmp_path / "none.cfsig", [])
    assert cfsig.read(tmp_path / "none.cfsig") == []


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"", "not a counterfake signature file"),
        (lambda b: b"\x89PNG\r\n\x1a\n" + b[8:], "not a counterfake signature file"),
        (lambda b: b[: len(b) // 2], "checksum mismatch"),
        (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "checksum mismatch"),
    ],
    ids=["empty", "foreign", "truncated", "one-bit-flipped"],
)
def test_damaged_file_is_refused_with_one_line(signature, tmp_path, damage, message):
    path = tmp_path / "bad.cfsig"
    path.write_bytes(damage(cfsig.dumps([signature])))
    with pytest.raises(cfsig.SignatureFileError) as caught:
        cfsig.read(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def _rewrite_header(data: bytes, edit) -> bytes:
    """Change the header and recompute the checksum, as a careless or hostile writer could."""
    import hashlib

    start = len(cfsig.MAGIC) + 4
    (length,) = struct.unpack_from("<I", data, len(cfsig.MAGIC))
    header = json.loads(data[start : start + length])
    edit(header)
    encoded = json.dumps(header).encode()
    body = cfsig.MAGIC + struct.pack("<I", len(encoded)) + encoded + data[start + length : -32]
    return body + hashlib.sha256(body).digest()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: h.update(version=99), "format version 99 is not supported"),
        (lambda h: h["parameters"].update(grid=[8, 8, 4]), "other extraction parameters"),
        (
            lambda h: h["signatures"][0]["arrays"]["grid"].__setitem__(0, 10**9),
            "outside the payload",
        ),
        (
            lambda h: h["signatures"][0]["arrays"]["features.xy"].__setitem__(1, "float64"),
            "expected float32",
        ),
        (lambda h: h["signatures"][0].pop("label"), "malformed signature entry"),
        (lambda h: h["signatures"][0]["arrays"]["face"].__setitem__(2, [3]), "face box"),
    ],
    ids=[
        "future-version",
        "other-parameters",
        "array-out-of-range",
        "wrong-dtype",
        "missing-field",
        "bad-face-box",
    ],
)
def test_inconsistent_old_header_is_refused(scanned, tmp_path, edit, message):
    path = tmp_path / "odd.cfsig"
    path.write_bytes(_rewrite_header(old_dumps([scanned]), edit))
    with pytest.raises(cfsig.SignatureFileError, match=message):
        cfsig.read(path)


def test_missing_file_is_a_signature_file_error(tmp_path):
    with pytest.raises(cfsig.SignatureFileError, match="No such file"):
        cfsig.read(tmp_path / "absent.cfsig")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: h.update(version=4), "format version 4 is not supported"),
        (lambda h: h["signatures"][0]["record"].__setitem__(0, 10**9), "malformed signature"),
        (lambda h: h["signatures"][0]["record"].__setitem__(1, 100), "record holds 100 bytes"),
        (lambda h: h["signatures"][0].__setitem__("record", 7), "malformed signature entry 1"),
    ],
    ids=["unknown-version", "record-out-of-range", "record-cut-short", "record-not-a-pair"],
)
def test_inconsistent_header_is_refused(signature, tmp_path, edit, message):
    path = tmp_path / "odd.cfsig"
    path.write_bytes(_rewrite_header(cfsig.dumps([signature]), edit))
    with pytest.raises(cfsig.SignatureFileError, match=message) as caught:
        cfsig.read(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"CFSIG" + b[4:], "not a counterfake signature record"),
        (lambda b: b[:-10], "its header says"),
        (lambda b: b[:-10] + b"\x00" * 10, "grid"),
        (lambda b: b[:25] + bytes([255]) + b[26:], "PDQ orientations"),
    ],
    ids=["foreign", "cut-short", "grid-damaged", "bad-orientation"],
)
def test_a_damaged_record_is_a_value_error(signature, damage, message):
    with pytest.raises(ValueError, match=message):
        record.decode(damage(record.encode(signature)))
