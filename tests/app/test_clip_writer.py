"""The scenario clip writer's quality: a constant quantiser really reaches the encoder (an option libavcodec ignored
left every clip at the default rate, where a small soft view loses a person altogether)."""

import av
import numpy as np

from app.scenarios import PERSON_VIDEO, _write


def _source(n=30):
    with av.open(str(PERSON_VIDEO)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24")[::2, ::2].copy())  # small, like the held-out views
            if len(frames) == n:
                return frames
    return frames


def _error(path, frames):
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    assert len(decoded) == len(frames)
    return float(np.mean([np.abs(d - f).mean() for d, f in zip(decoded, frames)]))


def test_qscale_reaches_the_encoder(tmp_path):
    frames = _source()
    _write(tmp_path / "default.mp4", frames, 10.0)
    _write(tmp_path / "q2.mp4", frames, 10.0, qscale=2)
    default, q2 = (tmp_path / "default.mp4").stat().st_size, (tmp_path / "q2.mp4").stat().st_size
    assert q2 > 2 * default, (q2, default)
    assert _error(tmp_path / "q2.mp4", frames) < _error(tmp_path / "default.mp4", frames)
