"""Real media made on the spot with PyAV: seed data for newcomers and fixtures for tests."""

from __future__ import annotations

import functools
import math
import struct

import av
from PIL import Image, ImageDraw

RATE = 44100


@functools.cache
def _second_of(hz: float) -> bytes:
    """One second of the tone, twice over so any frame is one slice: a whole number of cycles for a whole `hz`."""
    second = b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * hz * k / RATE))) for k in range(RATE))
    return second * 2


def _tone(n: int, count: int, hz: float) -> bytes:
    start = 2 * (n % RATE)
    return _second_of(hz)[start : start + 2 * count]


def _mux_audio(container, stream, seconds: float, hz: float) -> None:
    n, total, size = 0, int(RATE * seconds), 1024
    while n < total:
        count = min(size, total - n)
        frame = av.AudioFrame(format="s16", layout="mono", samples=count)
        frame.planes[0].update(_tone(n, count, hz))
        frame.sample_rate, frame.pts = RATE, n
        container.mux(stream.encode(frame))
        n += count
    container.mux(stream.encode(None))


def make_video(
    path: str,
    seconds: float = 2.0,
    size: tuple[int, int] = (320, 180),
    fps: float = 12,
    label: str = "StreamPay",
    with_audio: bool = True,
) -> str:
    """An H.264 MP4 with a moving colour bar and a label, and an AAC tone."""
    with av.open(path, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = container.add_stream("aac", rate=RATE, layout="mono") if with_audio else None
        for i in range(int(seconds * fps)):
            image = Image.new("RGB", size, (20, 24, 40))
            draw = ImageDraw.Draw(image)
            x = int(i / (seconds * fps) * size[0])
            draw.rectangle([x, 0, x + size[0] // 8, size[1]], fill=(230, 120, 40))
            draw.text((10, 10), f"{label} {float(i / fps):.1f}s", fill=(255, 255, 255))
            frame = av.VideoFrame.from_image(image)
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            _mux_audio(container, audio, seconds, 440.0)
    return path


def make_audio(path: str, seconds: float = 2.0, hz: float = 330.0) -> str:
    """An MP3 tone."""
    with av.open(path, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=RATE, layout="mono")
        _mux_audio(container, stream, seconds, hz)
    return path
