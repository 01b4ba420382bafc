import importlib.util

import pytest
import torch

from splat_apps.visualize import check_animation_format, save_animation


def test_gif_animation_round_trips_its_frame_count(tmp_path) -> None:
    import imageio.v3 as iio

    frames = torch.rand(3, 3, 8, 10)
    path = save_animation(frames, tmp_path / "turntable.gif")
    assert iio.imread(path, index=None).shape[:3] == (3, 8, 10)


def test_unknown_animation_format_is_refused_in_one_line() -> None:
    check_animation_format("gif")
    with pytest.raises(ValueError, match="gif or mp4, got 'webm'") as error:
        check_animation_format("webm")
    assert "\n" not in str(error.value)


def test_mp4_without_a_video_plugin_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="ffmpeg or pyav plugin"):
        check_animation_format("mp4")
