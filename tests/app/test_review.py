"""The labelling loop against the real store: frames of the car footage in a frame store, their detections in the
embedded ClickHouse, `review-export` picks the uncertain frames (a low-confidence box, a class flip within a track, a
moving car with no box, a box where nothing moves) and writes COCO; an annotator's corrections (CVAT renumbering,
Label Studio file-name prefixes) come back through `review-import` into the label store."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from app.cli import main
from app.inprocess import motion_detector
from app.review import ReviewError, ReviewSettings, export_review, file_name, import_review, parse_time, resolve_image
from app.stack import manager
from tests.conftest import CAR_VIDEO, make_settings
from vigil.framestore import LocalFrameStore
from vigil.labels import LabelStore
from vigil.outputs.clickhouse_rows import DETECTION_COLUMNS, FRAME_COLUMNS, ts
from vigil.store.client import connect

slow = pytest.mark.slow  # starts the embedded store
T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z
STEP_MS = 160
N_FRAMES = 40
SINCE, UNTIL = "2027-01-15T08:00:00Z", "2027-01-15T08:01:00Z"
LOW_CONF, FLIP, MISSED, FALSE_BOX, NOT_INFERRED, AT_BAND_EDGE = 32, 34, 36, 25, 37, 38
CAR, TRUCK, PERSON = 2, 7, 0


# ---- pure parts --------------------------------------------------------------------------------------------------

def test_parse_time_takes_iso_with_or_without_zone():
    assert parse_time("2027-01-15T08:00:00Z") == T0
    assert parse_time("2027-01-15 08:00:00.250") == T0 + 250
    assert parse_time("2027-01-15T09:00:00+01:00") == T0
    with pytest.raises(ReviewError, match="not an ISO 8601 time"):
        parse_time("yesterday")


def test_file_names_encode_camera_and_time_and_resolve_after_tool_renaming():
    taken = set()
    name = file_name("cam 7/north", T0 + 5, taken)
    assert name == "cam-7-north_20270115T080000-005Z.jpg"
    assert file_name("cam 7/north", T0 + 5, taken) == "cam-7-north_20270115T080000-005Z_2.jpg"
    frames = {name: {}, "cam-7-north_20270115T080000-005Z_2.jpg": {}}
    assert resolve_image(name, frames) == name
    assert resolve_image(f"images/{name}", frames) == name  # CVAT keeps folders
    assert resolve_image(f"/data/upload/3/8f3a2b1c-{name}", frames) == name  # Label Studio prefixes uploads
    assert resolve_image("other_20270115T080000-005Z.jpg", frames) is None


# ---- the store, the footage and the detections -------------------------------------------------------------------

@pytest.fixture(scope="module")
def store_settings(tmp_path_factory):
    base = make_settings(tmp_path_factory.mktemp("review"))
    manager.up(base, only=["clickhouse"], log=lambda *_: None)
    yield ReviewSettings(**base.model_dump())
    manager.down(base)


def car_frames() -> list[bytes]:
    """N_FRAMES frames of the car footage, every second frame (6.25 fps), as JPEG like ingest stores them."""
    out = []
    with av.open(str(CAR_VIDEO)) as container:
        for index, decoded in enumerate(container.decode(video=0)):
            if index % 2:
                continue
            _, jpeg = cv2.imencode(".jpg", decoded.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, 90])
            out.append(jpeg.tobytes())
            if len(out) == N_FRAMES:
                return out
    raise AssertionError("the footage is shorter than expected")


@pytest.fixture(scope="module")
def footage(store_settings, tmp_path_factory):
    """The camera's frames in a frame store and in `frames`, and its predictions in `detections`: the motion
    detector's own blobs as tracked cars (track 1), except for the frames the export must pick."""
    camera = f"rev-{uuid.uuid4().hex[:6]}"
    store = LocalFrameStore(tmp_path_factory.mktemp("frames"))
    detector = motion_detector()
    frame_rows, detection_rows, motion = [], [], {}
    for i, jpeg in enumerate(car_frames()):
        capture = T0 + i * STEP_MS
        uri = store.put(camera, i, capture, jpeg)
        frame_id = f"{camera}:{i}"
        frame_rows.append([frame_id, camera, ts(capture), i, 768, 432, "jpeg", uri, ts(capture)])
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        blobs = detector.process(camera, rgb)[0]
        motion[i] = blobs
        boxes = [list(b) for b in blobs]
        classes, confidence, tracks = [CAR] * len(boxes), [0.9] * len(boxes), [1] * len(boxes)
        if i == LOW_CONF:
            confidence = [0.4]
        elif i == FLIP:
            classes = [TRUCK]
        elif i == MISSED:
            boxes, classes, confidence, tracks = [], [], [], []
        elif i == FALSE_BOX:
            boxes, classes, confidence, tracks = [[20.0, 20.0, 80.0, 140.0]], [PERSON], [0.9], [2]
        elif i == AT_BAND_EDGE:
            confidence = [0.6]  # the band is [0.25, 0.6): not uncertain
        elif i == NOT_INFERRED:
            continue  # no detections row: only warms the motion detector
        flat = np.asarray(boxes, np.float32).reshape(-1, 4)
        detection_rows.append([frame_id, camera, ts(capture), i, ts(capture), ts(capture + 50), "motion_detector",
                               "1", *(flat[:, k].tolist() for k in range(4)), classes, confidence, tracks])
    # what the scenario rests on: a car moving through frames 28-39 as one blob, nothing moving before
    assert all(len(motion[i]) == 1 for i in range(28, N_FRAMES)) and not any(len(motion[i]) for i in range(28))
    client = connect(store_settings)
    client.insert("frames", frame_rows, column_names=FRAME_COLUMNS)
    client.insert("detections", detection_rows, column_names=DETECTION_COLUMNS)
    return {"camera": camera, "store": store, "motion": motion, "uri": {r[3]: r[7] for r in frame_rows}}


@pytest.fixture(scope="module")
def exported(store_settings, footage, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "review-1"
    result = export_review(store_settings, footage["camera"], SINCE, UNTIL, out, limit=10)
    return out, result


def name_of(camera: str, i: int) -> str:
    return file_name(camera, T0 + i * STEP_MS, set())


@slow
def test_export_picks_the_uncertain_frames_for_the_right_reasons(footage, exported):
    out, result = exported
    camera = footage["camera"]
    assert result.frames_scanned == N_FRAMES and result.frames_inferred == N_FRAMES - 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["camera_id"] == camera
    kinds = {name: [r["kind"] for r in entry["reasons"]] for name, entry in manifest["frames"].items()}
    assert kinds == {name_of(camera, FALSE_BOX): ["motion_unmatched"],
                     name_of(camera, LOW_CONF): ["low_confidence"],
                     name_of(camera, FLIP): ["class_flip"],
                     name_of(camera, MISSED): ["motion_missed"]}
    entry = manifest["frames"][name_of(camera, FLIP)]
    assert entry["uri"] == footage["uri"][FLIP] and entry["capture_ts_ms"] == T0 + FLIP * STEP_MS
    assert "track 1 is car in 9 of 10 boxes, truck here" in entry["reasons"][0]["detail"]
    assert "confidence 0.40" in manifest["frames"][name_of(camera, LOW_CONF)]["reasons"][0]["detail"]
    assert result.flagged == {"motion_unmatched": 1, "low_confidence": 1, "class_flip": 1, "motion_missed": 1}
    for name in manifest["frames"]:  # the stored JPEG, unchanged
        assert (out / "images" / name).read_bytes() == footage["store"].get(manifest["frames"][name]["uri"])


@slow
def test_export_writes_valid_coco_with_the_predicted_boxes(footage, exported):
    out, _ = exported
    camera = footage["camera"]
    doc = json.loads((out / "annotations.json").read_text())
    assert set(doc) >= {"images", "annotations", "categories"}
    assert {c["name"]: c["id"] for c in doc["categories"]} == {"person": 1, "bicycle": 2, "car": 3, "motorcycle": 4,
                                                               "bus": 6, "truck": 8}
    images = {img["id"]: img for img in doc["images"]}
    assert len(images) == len(doc["images"]) == 4
    assert [img["file_name"] for img in doc["images"]] == [name_of(camera, i) for i in (FALSE_BOX, LOW_CONF, FLIP, MISSED)]
    assert all(img["width"] == 768 and img["height"] == 432 for img in doc["images"])
    ids = [a["id"] for a in doc["annotations"]]
    assert len(set(ids)) == len(ids)
    category_ids = {c["id"] for c in doc["categories"]}
    by_image = {}
    for ann in doc["annotations"]:
        assert ann["image_id"] in images and ann["category_id"] in category_ids and ann["iscrowd"] == 0
        x, y, w, h = ann["bbox"]
        img = images[ann["image_id"]]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= img["width"] and y + h <= img["height"]
        assert ann["area"] == pytest.approx(w * h, abs=0.05) and 0 < ann["score"] <= 1
        by_image.setdefault(img["file_name"], []).append(ann)
    assert name_of(camera, MISSED) not in by_image  # the missed car: no predicted box
    flip = by_image[name_of(camera, FLIP)]
    assert [a["category_id"] for a in flip] == [8]
    x1, y1, x2, y2 = footage["motion"][FLIP][0]
    assert flip[0]["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.02)
    assert [a["score"] for a in by_image[name_of(camera, LOW_CONF)]] == [0.4]


@slow
def test_the_limit_keeps_the_highest_scores(store_settings, footage, tmp_path):
    result = export_review(store_settings, footage["camera"], SINCE, UNTIL, tmp_path / "top2", limit=2)
    assert [name for name, _ in result.chosen] == [name_of(footage["camera"], i) for i in (FLIP, MISSED)]
    assert sorted(p.name for p in (tmp_path / "top2" / "images").iterdir()) == [name for name, _ in result.chosen]


def corrected(exported_dir: Path, camera: str, motion) -> dict:
    """What comes back from CVAT after review: categories, images and annotations renumbered, scores dropped, one
    file name with Label Studio's upload prefix, the truck fixed, a missed car and a person added, a false box
    deleted."""
    doc = json.loads((exported_dir / "annotations.json").read_text())
    by_id = {c["id"]: c["name"] for c in doc["categories"]}
    labels = ["car", "truck", "person", "bus", "traffic sign"]  # the annotation project's labels, in its order
    new_cat = {name: i + 1 for i, name in enumerate(labels)}
    old_to_new_image = {img["id"]: len(doc["images"]) - k for k, img in enumerate(doc["images"])}
    images = [{"id": old_to_new_image[img["id"]], "file_name": img["file_name"], "width": 768, "height": 432,
               "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0} for img in doc["images"]]
    for img in images:
        if img["file_name"] == name_of(camera, LOW_CONF):
            img["file_name"] = "d5a1c0ff-" + img["file_name"]
    image_of = {img["file_name"].split("-", 1)[1] if img["file_name"].startswith("d5a1c0ff-") else img["file_name"]:
                img["id"] for img in images}
    annotations = []

    def add(name, category, bbox):
        annotations.append({"id": len(annotations) + 1, "image_id": image_of[name], "category_id": new_cat[category],
                            "segmentation": [], "area": bbox[2] * bbox[3], "bbox": bbox, "iscrowd": 0,
                            "attributes": {"occluded": False}})

    names = {img["id"]: img["file_name"] for img in doc["images"]}
    for ann in doc["annotations"]:
        name, category = names[ann["image_id"]], by_id[ann["category_id"]]
        if name == name_of(camera, FALSE_BOX):
            continue  # nothing there: deleted
        if name == name_of(camera, FLIP):
            category = "car"
        add(name, category, ann["bbox"])
    x1, y1, x2, y2 = (round(float(v), 2) for v in motion[MISSED][0])
    add(name_of(camera, MISSED), "car", [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)])
    add(name_of(camera, LOW_CONF), "person", [600.0, 100.0, 30.0, 80.0])
    return {"licenses": [], "info": {}, "categories": [{"id": i, "name": n, "supercategory": ""} for n, i in new_cat.items()],
            "images": sorted(images, key=lambda img: img["id"]), "annotations": annotations}


@slow
def test_import_puts_exactly_the_corrected_labels_into_the_store(store_settings, footage, exported, tmp_path):
    out, _ = exported
    camera = footage["camera"]
    path = tmp_path / "annotations.json"  # downloaded elsewhere: the export folder is named
    path.write_text(json.dumps(corrected(out, camera, footage["motion"])))
    labels = LabelStore(tmp_path / "labels")
    result = import_review(store_settings, camera, path, out, labels=labels)
    assert (len(result.frames), result.boxes, result.empty_frames) == (4, 4, 1)
    got = labels.frames(camera)
    assert [f.uri for f in got] == [footage["uri"][i] for i in (FALSE_BOX, LOW_CONF, FLIP, MISSED)]
    assert all(f.camera_id == camera and f.source == "review" and (f.width, f.height) == (768, 432) for f in got)
    assert [f.capture_ts_ms for f in got] == [T0 + i * STEP_MS for i in (FALSE_BOX, LOW_CONF, FLIP, MISSED)]
    false_box, low_conf, flip, missed = got
    assert false_box.xyxy.shape == (0, 4)  # verified empty: a negative for the next adaptation
    assert low_conf.class_id.tolist() == [CAR, PERSON]
    np.testing.assert_allclose(low_conf.xyxy[0], footage["motion"][LOW_CONF][0], atol=0.02)
    np.testing.assert_allclose(low_conf.xyxy[1], [600, 100, 630, 180])
    assert flip.class_id.tolist() == [CAR]
    np.testing.assert_allclose(flip.xyxy[0], footage["motion"][FLIP][0], atol=0.02)
    assert missed.class_id.tolist() == [CAR]
    np.testing.assert_allclose(missed.xyxy[0], footage["motion"][MISSED][0], atol=0.02)
    assert labels.frames(camera, since_ms=T0 + FLIP * STEP_MS) == [flip, missed]

    import_review(store_settings, camera, path, out, labels=labels)  # importing again replaces, never duplicates
    assert len(labels.frames(camera)) == 4


def bad(doc: dict, what: str) -> dict:
    doc = copy.deepcopy(doc)
    if what == "unknown image":
        doc["images"][0]["file_name"] = "rev-other_20270115T080000-000Z.jpg"
    elif what == "unknown category":
        doc["categories"].append({"id": 99, "name": "lorry"})
        doc["annotations"][0]["category_id"] = 99
    elif what == "outside":
        doc["annotations"][0]["bbox"] = [700.0, 400.0, 100.0, 50.0]
    elif what == "non-positive":
        doc["annotations"][0]["bbox"] = [10.0, 10.0, 0.0, 20.0]
    elif what == "not a bbox":
        doc["annotations"][0]["bbox"] = [10.0, 10.0, "wide"]
    return doc


@slow
@pytest.mark.parametrize("what, message", [
    ("unknown image", r"image 'rev-other_20270115T080000-000Z.jpg' \(id \d+\) is not in the export"),
    ("unknown category", "unknown category 'lorry'"),
    ("outside", r"bbox \[700.0, 400.0, 100.0, 50.0\] lies outside the 768x432 image"),
    ("non-positive", "has a non-positive size"),
    ("not a bbox", r"is not \[x, y, width, height\]"),
])
def test_bad_corrections_are_refused_with_nothing_written(store_settings, footage, exported, tmp_path, what, message):
    out, _ = exported
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad(corrected(out, footage["camera"], footage["motion"]), what)))
    labels = LabelStore(tmp_path / "labels")
    with pytest.raises(ReviewError, match=message) as error:
        import_review(store_settings, footage["camera"], path, out, labels=labels)
    assert "nothing imported" in str(error.value)
    assert labels.frames(footage["camera"]) == [] and not (tmp_path / "labels").exists()


@slow
def test_import_refuses_another_camera_and_a_missing_manifest(store_settings, footage, exported, tmp_path):
    out, _ = exported
    path = tmp_path / "c.json"
    path.write_text(json.dumps(corrected(out, footage["camera"], footage["motion"])))
    with pytest.raises(ReviewError, match=f"is of camera '{footage['camera']}', not 'cam-elsewhere'"):
        import_review(store_settings, "cam-elsewhere", path, out, labels=LabelStore(tmp_path / "labels"))
    with pytest.raises(ReviewError, match="no manifest.json in .*pass --export DIR"):
        import_review(store_settings, footage["camera"], path, None, labels=LabelStore(tmp_path / "labels"))


@slow
def test_the_commands(store_settings, footage, exported, tmp_path, monkeypatch, capsys):
    """`vigil review-export` and `vigil review-import` as a user runs them: options, summaries and exit codes."""
    out, _ = exported
    for key, value in (("DATA_DIR", str(store_settings.data_dir)), ("CLICKHOUSE_DSN", store_settings.clickhouse_dsn),
                       ("FRAME_STORE", footage["store"].root.as_uri()), ("REVIEW_LABELS_DIR", str(tmp_path / "labels"))):
        monkeypatch.setenv(f"VIGIL_{key}", value)
    code = main(["review-export", "--camera", footage["camera"], "--since", SINCE, "--until", UNTIL,
                 "--out", str(tmp_path / "cli-export"), "--limit", "3"])
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert code == 0, printed
    assert "40 frames in the period, 39 with detections, 4 flagged" in printed and "wrote 3 to" in printed
    assert len(json.loads((tmp_path / "cli-export" / "manifest.json").read_text())["frames"]) == 3

    code = main(["review-export", "--camera", footage["camera"], "--since", SINCE, "--until", UNTIL,
                 "--out", str(tmp_path / "cli-export")])
    assert code == 1 and "already holds a review export" in capsys.readouterr().out

    (out / "corrected.json").write_text(json.dumps(corrected(out, footage["camera"], footage["motion"])))
    code = main(["review-import", "--camera", footage["camera"], str(out / "corrected.json")])  # manifest beside it
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0, printed
    assert "imported 4 frames (4 boxes, 1 verified empty)" in printed
    assert len(LabelStore(tmp_path / "labels").frames(footage["camera"])) == 4

    code = main(["review-import", "--camera", "cam-elsewhere", str(out / "corrected.json")])
    assert code == 1 and "is of camera" in capsys.readouterr().out
