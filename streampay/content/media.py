"""What an upload is: its type sniffed from the bytes, and its facts probed with PyAV.

PyAV is imported by the functions that probe (the processing job), not by the upload's sniffing:
a `flask` command or a web request does not load FFmpeg's libraries it does not use.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import filetype

SNIFF_BYTES = 8192
THUMBNAIL_SIZE = (480, 270)
VIDEO_CODECS = {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "theora"}
AUDIO_CODECS = {"aac", "mp3", "mp3float", "opus", "vorbis", "flac", "alac", "ac3", "eac3"}
AUDIO_CODEC_PREFIXES = ("pcm_",)


class MediaRejected(Exception):
    """The file is not media we can stream; the message tells the creator why."""


def sniff(head: bytes) -> str | None:
    """The MIME type of audio or video bytes, from their signature; None for anything else."""
    kind = filetype.guess(head)
    if kind is None or not kind.mime.startswith(("video/", "audio/")):
        return None
    return kind.mime


@dataclass
class Probe:
    duration_ms: int
    container: str
    bitrate: int | None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = field(default=None, repr=False)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _audio_ok(name: str) -> bool:
    return name in AUDIO_CODECS or name.startswith(AUDIO_CODEC_PREFIXES)


def probe(path: str, max_duration_ms: int) -> Probe:
    """Open, check and measure the file; raise MediaRejected with a reason a creator can act on."""
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaRejected("The file is not audio or video we can read (it may be truncated or corrupt).") from exc
    with container:
        video = next(iter(container.streams.video), None)
        audio = next(iter(container.streams.audio), None)
        if video is None and audio is None:
            raise MediaRejected("The file has no audio or video stream.")
        if video is not None and video.codec_context.name not in VIDEO_CODECS:
            raise MediaRejected(f"Unsupported video codec {video.codec_context.name!r}.")
        if audio is not None and not _audio_ok(audio.codec_context.name):
            raise MediaRejected(f"Unsupported audio codec {audio.codec_context.name!r}.")
        duration_ms = (container.duration or 0) // 1000
        if duration_ms <= 0:
            raise MediaRejected("The file reports no duration.")
        if duration_ms > max_duration_ms:
            raise MediaRejected(f"Too long: {duration_ms // 1000} s; the limit is {max_duration_ms // 1000} s.")
        result = Probe(
            duration_ms=duration_ms,
            container=container.format.name,
            bitrate=container.bit_rate or None,
            video_codec=video.codec_context.name if video is not None else None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
        )
        _check_complete(container, duration_ms)
    result.thumbnail = thumbnail(path) if video is not None else None
    return result


def _check_complete(container, duration_ms: int) -> None:
    """Demux every packet (no decoding): a truncated file ends well before its stated duration."""
    import av

    reached_ms = 0
    try:
        for packet in container.demux():
            if packet.pts is not None and packet.time_base is not None:
                end = packet.pts + (packet.duration or 0)
                reached_ms = max(reached_ms, int(end * packet.time_base * 1000))
    except av.FFmpegError as exc:
        raise MediaRejected("The file is truncated or corrupt: its data ends early.") from exc
    if reached_ms < duration_ms * 9 // 10:
        raise MediaRejected(
            f"The file is truncated: its data ends at {reached_ms // 1000} s of {duration_ms // 1000} s."
        )


def thumbnail(path: str) -> bytes:
    """A JPEG of a frame about a tenth of the way in (the first frame for short clips)."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if container.duration and stream.time_base:
            target = int(container.duration / 10 / 1_000_000 / stream.time_base)
            container.seek(target, stream=stream)
        try:
            frame = next(container.decode(stream))
        except (StopIteration, av.FFmpegError) as exc:
            raise MediaRejected("No video frame could be decoded.") from exc
        image = frame.to_image()
    image.thumbnail(THUMBNAIL_SIZE)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=82)
    return out.getvalue()
