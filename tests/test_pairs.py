"""Pairs within a collection, on real photos of ../shared/data and the benchmark's harmless edits.

Two sources, derivatives made from them the way bench/cases.py makes its cases (an inpainted
garment, a blurred garment then cropped, a half-size repost, a phone screenshot, a recompressed
copy), and unrelated distractors, some of people photographed in the same style.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA, read_rgb, save
from test_pairs_original import framed_on_screen

from bench.cases import (
    Placed,
    apply_edit,
    collage,
    crop_box,
    cropped,
    edit_region,
    head_mask,
    screenshot,
)
from counterfake.cli import main
from counterfake.pairs import (
    Cluster,
    Collection,
    PairFinder,
    Picture,
    Relation,
    affected_clusters,
    organise,
)
from counterfake.reports.evidence import verify_evidence

SOURCES = ("0003", "0007")
DISTRACTORS = ("0001", "0002", "0005", "0470", "0512")


def _region(stem: str, target: float) -> np.ndarray:
    people = SHARED_DATA / "people"
    garment = cv2.imread(str(people / f"{stem}_mask.png"), cv2.IMREAD_GRAYSCALE) > 127
    labels = cv2.imread(str(SHARED_DATA / "people_labels" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    return edit_region(garment, head_mask(labels), target)


def _jpeg(path: Path, rgb: np.ndarray, quality: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return str(path)


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> dict:
    """The files, and what each derivative is: (source, expected kind)."""
    if not (SHARED_DATA / "people").is_dir():
        pytest.skip(f"the benchmark photos live in {SHARED_DATA}, absent from this checkout")
    folder = tmp_path_factory.mktemp("collection")
    rng = random.Random(7)
    a, b = (
        str(shutil.copy(SHARED_DATA / "people" / f"{s}.jpg", folder / f"src-{s}.jpg"))
        for s in SOURCES
    )
    photo_a, photo_b = read_rgb(Path(a)), read_rgb(Path(b))
    edited, _ = apply_edit(photo_a, _region(SOURCES[0], 0.35), "inpaint", rng, [])
    blurred, _ = apply_edit(photo_b, _region(SOURCES[1], 0.35), "blur", rng, [])
    crop = cropped(Placed(blurred, None, np.eye(3)), crop_box(*blurred.shape[1::-1], rng)).rgb
    shot = screenshot(Placed(photo_a, None, np.eye(3)), rng).rgb
    half = cv2.resize(photo_a, (photo_a.shape[1] // 2, photo_a.shape[0] // 2), cv2.INTER_AREA)
    derivatives = {
        _jpeg(folder / "d" / "inpainted.jpg", edited, 85): (a, "manipulated"),
        _jpeg(folder / "d" / "blurred-crop.jpg", crop, 85): (b, "manipulated"),
        _jpeg(folder / "d" / "half.jpg", half, 85): (a, "repost"),
        str(save(folder / "d" / "screenshot.png", shot)): (a, "repost"),
        _jpeg(folder / "d" / "copy.jpg", photo_b, 70): (b, "repost"),
    }
    distractors = [
        str(shutil.copy(SHARED_DATA / "distractors" / f"{s}.jpg", folder / f"x-{s}.jpg"))
        for s in DISTRACTORS
    ]
    return {
        "folder": folder,
        "sources": [a, b],
        "derivatives": derivatives,
        "distractors": distractors,
    }


@pytest.fixture(scope="module")
def found(collection) -> dict:
    return PairFinder(workers=2).find([collection["folder"]]).to_json()


def test_each_derivative_is_paired_with_its_source_in_the_right_direction(found, collection):
    pairs = {p["derivative"]: p for p in found["pairs"]}
    for derivative, (source, kind) in collection["derivatives"].items():
        assert derivative in pairs, f"{derivative} was not paired"
        assert pairs[derivative]["source"] == source
        assert pairs[derivative]["kind"] == kind
        assert 0.5 <= pairs[derivative]["score"] <= 1
    assert len(found["pairs"]) == len(collection["derivatives"])


def test_a_manipulated_pair_has_a_mask_over_the_edited_garment(collection, tmp_path):
    doc = (
        PairFinder(workers=1)
        .find([collection["sources"][0], *list(collection["derivatives"])[:1]], masks_dir=tmp_path)
        .to_json()
    )
    [pair] = doc["pairs"]
    assert pair["kind"] == "manipulated" and 0.15 < pair["altered_fraction"] < 0.6
    mask = cv2.imread(pair["mask"], cv2.IMREAD_GRAYSCALE) > 127
    truth = _region(SOURCES[0], 0.35)
    assert mask.shape == truth.shape
    assert (mask & truth).sum() / (mask | truth).sum() > 0.4


def test_one_cluster_per_original_photo_and_the_counts(found, collection):
    clusters = {c["original"]: c for c in found["clusters"]}
    assert set(clusters) == set(collection["sources"])
    for source in collection["sources"]:
        expected = {source} | {d for d, (s, _) in collection["derivatives"].items() if s == source}
        assert set(clusters[source]["members"]) == expected
        assert clusters[source]["members"][0] == source
    assert found["photos_affected"] == 2 and found["scenes"] == 2
    assert found["images"] == 2 + len(collection["derivatives"]) + len(DISTRACTORS)


def test_unrelated_photos_give_no_pair(collection):
    doc = PairFinder(workers=2).find(collection["sources"] + collection["distractors"]).to_json()
    assert doc["pairs"] == [] and doc["clusters"] == []
    assert doc["photos_affected"] == 0 and doc["scenes"] == 0 and doc["errors"] == []


def test_bad_inputs_get_one_line_errors_and_the_rest_completes(collection, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    empty = tmp_path / "empty"
    empty.mkdir()
    derivative = next(iter(collection["derivatives"]))
    doc = (
        PairFinder(workers=1)
        .find([collection["sources"][0], bad, empty, tmp_path / "absent.jpg", derivative])
        .to_json()
    )
    errors = {e["path"]: e["error"] for e in doc["errors"]}
    assert set(errors) == {str(bad), str(empty), str(tmp_path / "absent.jpg")}
    for path, error in errors.items():
        assert path in error and "\n" not in error
    assert "no images in this folder" in errors[str(empty)]
    assert [(p["source"], p["derivative"]) for p in doc["pairs"]] == [
        (collection["sources"][0], derivative)
    ]


def test_cli_writes_json_report_csv_and_evidence(collection, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    code = main(
        [
            "pairs",
            str(collection["folder"]),
            "--json", str(out / "pairs.json"),
            "--report", str(out / "report.html"),
            "--csv", str(out / "pairs.csv"),
            "--evidence", str(out / "evidence"),
            "--workers", "2",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "5 pair(s)" in printed and "2 original photo(s) affected" in printed
    doc = json.loads((out / "pairs.json").read_text())
    assert len(doc["pairs"]) == 5 and all(p["mask"] is None for p in doc["pairs"])
    page = (out / "report.html").read_text()
    assert page.count('<section class="cluster">') == 2
    assert page.count('<article class="card match pair">') == 5
    assert page.count('data-outlined="true"') == 2  # the two manipulated derivatives
    rows = (out / "pairs.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rows[0].startswith("source,derivative,kind") and len(rows) == 6
    assert verify_evidence(out / "evidence").startswith("OK")
    manifest = [json.loads(line) for line in (out / "evidence" / "manifest.jsonl").open()]
    assert manifest[0]["registry"] is None and manifest[0]["settings"]["command"] == "pairs"
    findings = [f for line in manifest[1:-1] for f in line["findings"]]
    assert sum(f["mask"] is not None for f in findings) == 2
    assert manifest[-1]["files"] == 2 + len(collection["derivatives"]) + len(DISTRACTORS)


def test_cli_refuses_an_unwritable_output_before_any_work(collection, tmp_path, capsys):
    code = main(["pairs", str(collection["folder"]), "--json", str(tmp_path / "no" / "p.json")])
    assert code == 2
    assert "p.json" in capsys.readouterr().err


def test_an_edit_saved_finer_than_its_photo_is_not_taken_for_the_original(tmp_path):
    """Two same-size versions tell nothing by geometry, and an edit re-saved at a finer JPEG
    quality than the photo would win on quantisation; but the photo's plain re-saves agree with
    it and none agrees with the edit, so the photo is the original and the edit its derivative."""
    if not (SHARED_DATA / "people").is_dir():
        pytest.skip(f"the benchmark photos live in {SHARED_DATA}, absent from this checkout")
    source = str(shutil.copy(SHARED_DATA / "people" / f"{SOURCES[0]}.jpg", tmp_path / "a.jpg"))
    photo = read_rgb(Path(source))
    edited, _ = apply_edit(photo, _region(SOURCES[0], 0.35), "inpaint", random.Random(3), [])
    fine_edit = _jpeg(tmp_path / "edit.jpg", edited, 99)
    plain = [_jpeg(tmp_path / f"resaved-{q}.jpg", photo, q) for q in (70, 75)]
    doc = PairFinder(workers=1).find([source, fine_edit, *plain]).to_json()
    [cluster] = doc["clusters"]
    assert cluster["original"] in (source, *plain)  # the photo, or a same-size re-save of it
    [pair] = [p for p in doc["pairs"] if p["derivative"] == fine_edit]
    assert pair["source"] == cluster["original"] and pair["kind"] == "manipulated"


def test_a_photo_shown_only_beside_another_in_a_collage_is_related_not_affected(tmp_path):
    """A collage of a reposted photo and an unrelated one holds both; the unrelated photo keeps
    a cluster (the investigator sees where its pixels went) that is not counted as affected."""
    if not (SHARED_DATA / "people").is_dir():
        pytest.skip(f"the benchmark photos live in {SHARED_DATA}, absent from this checkout")
    source = str(shutil.copy(SHARED_DATA / "people" / f"{SOURCES[0]}.jpg", tmp_path / "a.jpg"))
    partner = str(shutil.copy(SHARED_DATA / "distractors" / "0475.jpg", tmp_path / "x.jpg"))
    photo = read_rgb(Path(source))
    both = collage(Placed(photo, None, np.eye(3)), read_rgb(Path(partner)), False, random.Random(5))
    shared = _jpeg(tmp_path / "collage.jpg", both.rgb, 90)
    copy = _jpeg(tmp_path / "copy.jpg", photo, 75)
    doc = PairFinder(workers=1).find([source, partner, shared, copy]).to_json()
    clusters = {c["original"]: c for c in doc["clusters"]}
    assert clusters[source]["affected"] and shared in clusters[source]["members"]
    assert clusters[partner]["affected"] is False and clusters[partner]["scene"] is None
    assert doc["photos_affected"] == 1 and doc["scenes"] == 1
    sources = {p["source"] for p in doc["pairs"] if p["derivative"] == shared}
    assert source in sources


def test_an_original_counts_when_an_image_was_made_from_it_alone():
    """Photo 1 has its own copy (3) and lent its pixels to collage 5 with photo 2; photo 2 is
    seen only in that collage, so it is related, not affected; a collage (8) of two photos (6,
    7) found nowhere else holds no counted original, so both count."""
    clusters = [
        Cluster(1, {1, 3, 5}),
        Cluster(2, {2, 5}),
        Cluster(6, {6, 8}),
        Cluster(7, {7, 8}),
    ]
    assert affected_clusters(clusters) == [True, False, True, True]


def _pasted_whole(rgb: np.ndarray, region: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """The region filled with the whole texture photo squeezed into its bounding box (unlike
    the benchmark's paste, which tiles a crop of a landscape)."""
    ys, xs = np.nonzero(region)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    squeezed = cv2.resize(texture, (right - left, bottom - top), interpolation=cv2.INTER_AREA)
    edited = rgb.copy()
    inside = region[top:bottom, left:right]
    edited[top:bottom, left:right][inside] = squeezed[inside]
    return edited


def test_one_texture_pasted_into_edits_of_two_photos_keeps_the_photos_apart(tmp_path):
    """The same landscape photo pasted over the garments of two women's photos: each edit is
    related to its photo and to the landscape, which relates to both edits. The two photos stay
    two clusters, each under its own original, and are counted twice."""
    if not (SHARED_DATA / "people").is_dir():
        pytest.skip(f"the benchmark photos live in {SHARED_DATA}, absent from this checkout")
    texture_path = str(shutil.copy(SHARED_DATA / "distractors" / "0500.jpg", tmp_path / "t.jpg"))
    texture = read_rgb(Path(texture_path))
    files, photos = [texture_path], []
    for stem in ("0012", "0021"):
        photo = read_rgb(SHARED_DATA / "people" / f"{stem}.jpg")
        photos.append(str(shutil.copy(SHARED_DATA / "people" / f"{stem}.jpg", tmp_path)))
        half = cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), cv2.INTER_AREA)
        files += [
            photos[-1],
            *(_jpeg(tmp_path / f"{stem}-{q}.jpg", photo, q) for q in (75, 85)),
            _jpeg(tmp_path / f"{stem}-half.jpg", half, 85),
            _jpeg(
                tmp_path / f"{stem}-edit.jpg",
                _pasted_whole(photo, _region(stem, 0.45), texture),
                88,
            ),
        ]
    doc = PairFinder(workers=1).find(files).to_json()
    originals = {c["original"]: c for c in doc["clusters"] if c["affected"]}
    assert set(originals) == set(photos) and doc["photos_affected"] == 2
    for photo, other in (photos, photos[::-1]):
        assert other not in originals[photo]["members"]


def _related(
    source: int, derivative: int, covered: float = 1.0, seam: bool = False, agreeing: float = 0.95
) -> Relation:
    return Relation(
        source=source,
        derivative=derivative,
        kind="repost" if agreeing > 0.9 else "manipulated",
        score=0.9,
        altered_fraction=0.0,
        inliers=60,
        mask=None,
        shown=1.0,
        covered=covered,
        resolution=1.0,
        seam=seam,
        mirrored=False,
        agreeing=agreeing,
    )


def test_collages_of_two_photos_join_both_clusters_and_merge_neither():
    """Photos 0 and 2 (each with a re-save, 1 and 3) stand side by side in a collage (4) and in
    a re-save of it (5), each filling half of it, framed by a seam. The collages belong to
    both clusters; the photos stay two clusters, though two images of each side relate to
    two images of the other through copies of the collage."""
    collection = Collection([Picture(key, f"{key}.jpg", f"{key}.jpg") for key in range(6)])
    for source, derivative in ((0, 1), (2, 3), (4, 5)):
        collection.relations[source, derivative] = _related(source, derivative)
    for photo, collage_copy in ((0, 4), (2, 4), (1, 5), (3, 5)):
        collection.relations[photo, collage_copy] = _related(photo, collage_copy, 0.5, seam=True)
    clusters = organise(collection).clusters
    assert sorted(c.original in (0, 1) for c in clusters) == [False, True]
    assert all({4, 5} <= c.members and len(c.members) == 4 for c in clusters)


def _beside(small: np.ndarray, large: np.ndarray) -> np.ndarray:
    """A small photo beside a large one on a pale border (unlike the benchmark's collages,
    where the two halves are of one height)."""
    height = 900
    a, b = (
        cv2.resize(rgb, (round(rgb.shape[1] * h / rgb.shape[0]), h), interpolation=cv2.INTER_AREA)
        for rgb, h in ((small, height * 11 // 20), (large, height))
    )
    canvas = np.full((height + 40, a.shape[1] + b.shape[1] + 60, 3), 250, np.uint8)
    canvas[20 : 20 + a.shape[0], 20 : 20 + a.shape[1]] = a
    canvas[20 : 20 + height, 40 + a.shape[1] : 40 + a.shape[1] + b.shape[1]] = b
    return canvas


def test_a_collage_whose_relations_went_to_the_photo_beside_and_to_screens_joins_its_photo(
    tmp_path,
):
    """Two women's photos, each beside the same large landscape in a collage, and each on two
    phone screens. A collage finds the landscape, the other collage and the screens first
    (the screens hold its photo as large as it does), none of which joins a photo's group;
    asked again, it finds its photo, joins that cluster, and the landscape, seen only beside
    photos that were reposted, is not counted."""
    if not (SHARED_DATA / "people").is_dir():
        pytest.skip(f"the benchmark photos live in {SHARED_DATA}, absent from this checkout")
    partner_path = str(shutil.copy(SHARED_DATA / "distractors" / "0575.jpg", tmp_path / "x.jpg"))
    partner = read_rgb(Path(partner_path))
    files, collages = [partner_path], {}
    for stem in ("0012", "0021"):
        photo = read_rgb(SHARED_DATA / "people" / f"{stem}.jpg")
        source = str(shutil.copy(SHARED_DATA / "people" / f"{stem}.jpg", tmp_path))
        collages[source] = _jpeg(tmp_path / f"{stem}-collage.jpg", _beside(photo, partner), 88)
        files += [
            source,
            collages[source],
            *(_jpeg(tmp_path / f"{stem}-{q}.jpg", photo, q) for q in (75, 85)),
            _jpeg(tmp_path / f"{stem}-screen.jpg", framed_on_screen(photo), 88),
            _jpeg(tmp_path / f"{stem}-screen2.jpg", framed_on_screen(photo[:, ::-1]), 80),
        ]
    doc = PairFinder(workers=1).find(files).to_json()
    clusters = {c["original"]: c for c in doc["clusters"]}
    for source, collage_path in collages.items():
        assert collage_path in clusters[source]["members"]
    assert clusters[partner_path]["affected"] is False and doc["photos_affected"] == 2


def test_edits_that_found_one_another_join_their_photo_through_one_relation_that_mostly_agrees():
    """Two edits of a photo (2, 3) related only to each other, and the photo with its re-save
    (0, 1): the one relation found later between an edit and the photo, two thirds of it in
    agreement, is a copy's relation, and makes one cluster. A relation in which less than
    half agrees (a pasted texture's) would need two images on each side."""
    collection = Collection([Picture(key, f"{key}.jpg", f"{key}.jpg") for key in range(4)])
    collection.relations[0, 1] = _related(0, 1)
    collection.relations[2, 3] = _related(2, 3, agreeing=0.7)
    collection.relations[0, 2] = _related(0, 2, agreeing=0.65)
    [cluster] = organise(collection).clusters
    assert cluster.members == {0, 1, 2, 3}
    collection.relations[0, 2] = _related(0, 2, agreeing=0.4)
    assert len(organise(collection).clusters) == 2
