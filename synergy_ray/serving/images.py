"""Turning a request's `image_url` into a picture, under the server's rules for what it may read.

Accepted: `data:image/<type>;base64,<bytes>` URLs, and absolute file paths (plain or `file://`) that resolve,
symlinks and `..` followed, inside one of `serve.allowed_image_dirs`. Refused with a message naming the problem:
remote URLs (the server fetches nothing), relative paths, paths outside the allowed directories (403, checked on
the resolved path before the file is touched, so a refusal says nothing about what exists outside), more than
`serve.max_image_bytes` (413, checked before decoding), more than `serve.max_image_pixels` (413, read from the
header before decoding: a small PNG can expand to gigabytes), anything but a regular file (400: a FIFO or a
device would block or stream forever; it is opened non-blocking and checked before any read), and bytes that
Pillow cannot decode as an image (400).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from synergy_ray.serving.errors import RequestError

_DATA_URL = re.compile(r"data:image/[\w.+-]+;base64,(?P<payload>.*)", re.DOTALL)


@dataclass(frozen=True)
class ImagePolicy:
    allowed_dirs: tuple[Path, ...]  # already resolved; empty: no file paths at all, data URLs only
    max_bytes: int
    max_pixels: int = 4096 * 4096

    @classmethod
    def create(cls, allowed_dirs: list[str], max_bytes: int, max_pixels: int = 4096 * 4096) -> ImagePolicy:
        """Resolve the allowed directories once, where the server starts (replicas may run elsewhere)."""
        return cls(tuple(Path(os.path.realpath(os.path.expanduser(d))) for d in allowed_dirs), max_bytes,
                   max_pixels)


def load_image(url: str, policy: ImagePolicy):
    """The picture an `image_url` names, as an RGB `PIL.Image`; raises `RequestError` when it may not be read."""
    if url.startswith("data:"):
        data = _data_url_bytes(url, policy.max_bytes)
    elif re.match(r"[a-zA-Z][\w+.-]*://", url) and not url.startswith("file://"):
        raise RequestError(400, f"image_url: {url.split(':', 1)[0]} URLs are not fetched; send the image as a "
                                "data:image/...;base64 URL or as a file path the server may read")
    else:
        data = _read_capped(allowed_path(url, policy), policy.max_bytes)
    return decode_image(data, policy.max_pixels)


def _data_url_bytes(url: str, max_bytes: int) -> bytes:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise RequestError(400, "image_url: a data URL must look like data:image/<type>;base64,<data>")
    payload = match["payload"]
    if len(payload.rstrip("=")) * 3 // 4 > max_bytes:
        raise RequestError(413, f"image_url: the image is larger than the server's limit of {max_bytes} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, "image_url: the data URL's payload is not valid base64") from None


def allowed_path(url: str, policy: ImagePolicy) -> Path:
    """The resolved file an image path or `file://` URL names, if it lies inside an allowed directory."""
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise RequestError(400, f"image_url: file URLs must name a local file, not host {parsed.netloc!r}")
        raw = unquote(parsed.path)
    else:
        raw = url
    if not policy.allowed_dirs:
        raise RequestError(403, "image_url: this server reads no image files (serve.allowed_image_dirs is "
                                "empty); send the image as a data URL")
    if not os.path.isabs(raw):
        raise RequestError(400, f"image_url: the image path {raw!r} must be absolute")
    resolved = Path(os.path.realpath(raw))
    if not any(resolved.is_relative_to(d) for d in policy.allowed_dirs):
        raise RequestError(403, f"image_url: {raw!r} is outside the directories this server may read images from")
    return resolved


def _read_capped(path: Path, max_bytes: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO for reading would wait for a writer
    except FileNotFoundError:
        raise RequestError(400, f"image_url: no such image file {str(path)!r}") from None
    except OSError as err:
        raise RequestError(400, f"image_url: cannot read {str(path)!r}: {err.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise RequestError(400, f"image_url: {str(path)!r} is not a regular file")
        try:
            data = f.read(max_bytes + 1)
        except OSError as err:
            raise RequestError(400, f"image_url: cannot read {str(path)!r}: {err.strerror}") from None
    if len(data) > max_bytes:
        raise RequestError(413, f"image_url: {str(path)!r} is larger than the server's limit of {max_bytes} bytes")
    return data


def decode_image(data: bytes, max_pixels: int = 4096 * 4096):
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
            if width * height <= max_pixels:
                image.load()  # decode now: a truncated file would fail later
                return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:  # UnidentifiedImageError is an OSError
        raise RequestError(400, f"image_url: the bytes are not a readable image ({type(err).__name__})") from None
    raise RequestError(413, f"image_url: the image is {width}x{height} pixels, more than the server's limit of "
                            f"{max_pixels}")
