"""The .cfsig format: round-trips exactly and refuses damaged or foreign files clearly."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from counterfake.signature import cfsig
from counterfake.signature.extract import make_signature


@pytest.fixture(scope="module")
def signature(photo):
    return make_signature(photo, label="my photos/beach.jpg", sha256="ab" * 32)


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
    for side in ("features", "mirrored"):
        for field in ("xy", "size", "angle", "octave", "descriptors"):
            np.testing.assert_array_equal(
                getattr(getattr(back, side), field), getattr(getattr(signature, side), field)
            )


def test_file_holds_no_pixels(signature):
    """A signature is small: far too small to hold the 480x640 photo it came from."""
    size = len(cfsig.dumps([signature]))
    assert size < 80_000
    assert signature.grid.shape == (48, 48, 4)


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
def test_inconsistent_header_is_refused(signature, tmp_path, edit, message):
    path = tmp_path / "odd.cfsig"
    path.write_bytes(_rewrite_header(cfsig.dumps([signature]), edit))
    with pytest.raises(cfsig.SignatureFileError, match=message):
        cfsig.read(path)


def test_missing_file_is_a_signature_file_error(tmp_path):
    with pytest.raises(cfsig.SignatureFileError, match="No such file"):
        cfsig.read(tmp_path / "absent.cfsig")
