"""Uploaded audio: the multipart body read under a size limit, decoded in memory, checked for truncation and length.

Every refusal is an :class:`~.errors.ApiError` (4xx) whose message names the problem; nothing here names a path.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import AsyncIterator

import numpy as np
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from ..audio import prepare_samples
from ..errors import AudioError
from .errors import ApiError

__all__ = ["MAX_FIELD_CHARS", "Upload", "decode_audio", "read_form"]

FORM_OVERHEAD = 64 * 1024  # bytes of the body beyond the file allowed for the other fields and part headers
MAX_FIELD_BYTES = 16 * 1024  # longest text field in bytes (a prompt)
MAX_FIELD_CHARS = MAX_FIELD_BYTES // 4  # longest text field in characters (any UTF-8 text this long fits the bytes)
SUPPORTED = "WAV, FLAC, OGG/Vorbis/Opus, MP3"
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # a WAV written while streaming may not know its data size


@dataclass(frozen=True)
class Upload:
    audio: bytes
    fields: dict[str, str]


async def _limited(stream: AsyncIterator[bytes], limit: int, max_mb: float) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise ApiError(413, f"the upload is larger than the server's limit of {max_mb:g} MiB", "file")
        yield chunk


async def read_form(request: Request, max_bytes: int, max_mb: float) -> Upload:
    """The multipart form of a transcription request: the ``file`` part and the text fields."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise ApiError(415, "send the audio as multipart/form-data with a 'file' part (Content-Type was "
                            f"{ctype.split(';')[0] or 'missing'})")
    limit = max_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the upload is larger than the server's limit of {max_mb:g} MiB", "file")
    parser = MultiPartParser(request.headers, _limited(request.stream(), limit, max_mb), max_files=1, max_fields=16,
                             max_part_size=MAX_FIELD_BYTES)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart body: {exc.message}") from None
    except ClientDisconnect:
        raise ApiError(400, "the client disconnected before the upload was complete") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "the form has no 'file' part holding the audio", "file")
        data = await upload.read()
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    finally:
        await form.close()
    for name, value in fields.items():
        if len(value) > MAX_FIELD_CHARS:
            raise ApiError(400, f"the field {name[:40]!r} is longer than {MAX_FIELD_CHARS} characters", name[:40])
    if len(data) > max_bytes:
        raise ApiError(413, f"the upload is larger than the server's limit of {max_mb:g} MiB", "file")
    return Upload(data, fields)


def _wav_shortfall(data: bytes) -> tuple[int, int] | None:
    """(declared, present) bytes of a WAV's data chunk when the file holds less than its header says."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            present = len(data) - pos - 8
            return (size, present) if size not in _UNKNOWN_SIZES and present < size else None
        pos += 8 + size + (size & 1)
    return None


def decode_audio(data: bytes, target_rate: int, max_audio_s: float) -> np.ndarray:
    """Mono float32 samples at ``target_rate`` from an uploaded file's bytes."""
    if not data:
        raise ApiError(400, "the uploaded file is empty (0 bytes)", "file")
    import soundfile as sf

    short = _wav_shortfall(data)
    if short is not None:
        raise ApiError(400, f"the WAV file is truncated: its header declares {short[0]} bytes of audio and the "
                            f"upload holds {short[1]}", "file")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            if f.frames > max_audio_s * f.samplerate:
                raise ApiError(413, f"the audio lasts {f.frames / f.samplerate:.1f} s, longer than the server's "
                                    f"limit of {max_audio_s:g} s", "file")
            samples = f.read(dtype="float32", always_2d=True)
            rate = f.samplerate
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        reason = getattr(exc, "error_string", "") or "unreadable data"
        raise ApiError(400, f"cannot decode the uploaded file as audio ({reason.rstrip('.')}); supported: "
                            f"{SUPPORTED}", "file") from None
    if samples.shape[0] == 0:
        raise ApiError(400, "the uploaded audio has no samples", "file")
    if samples.shape[0] > max_audio_s * rate:  # formats whose length the header does not give exactly
        raise ApiError(413, f"the audio lasts {samples.shape[0] / rate:.1f} s, longer than the server's limit of "
                            f"{max_audio_s:g} s", "file")
    try:
        return prepare_samples(samples, rate, target_rate)
    except AudioError as exc:
        raise ApiError(400, f"unusable audio: {exc}", "file") from None
