"""Photos in (path, bytes, file object, PIL image, numpy array) and images and maps out.

numpy and Pillow are imported only when a value needs them: a PIL image can only be passed in when
Pillow is already imported, a numpy array only when numpy is, so neither is imported to recognise
them; a numpy photo is encoded to PNG here, without Pillow."""

import io
import os
import struct
import sys
import zlib
from typing import Any, Union

Photo = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Any]

# PIL modes PNG stores as they are; anything else (CMYK, YCbCr, I, F...) is converted to RGB.
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}


def photo_bytes(photo: Photo) -> bytes:
    """The encoded bytes to send for `photo`: a file path, encoded bytes (JPEG, PNG, WebP), a binary
    file object, a PIL image or an HxWx3 (or HxW gray) uint8 numpy array; images go as PNG."""
    if isinstance(photo, (bytes, bytearray, memoryview)):
        return bytes(photo)
    if isinstance(photo, (str, os.PathLike)):
        with open(photo, "rb") as f:
            return f.read()
    if _is_pil_image(photo):
        return _pil_png(photo)
    if _is_ndarray(photo):
        return array_png(photo)
    if hasattr(photo, "read"):
        data = photo.read()
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
    raise TypeError(f"photo must be a path, bytes, a binary file, a PIL image or a numpy array, "
                    f"not {type(photo).__name__}")


def _is_pil_image(value: Any) -> bool:
    image_module = sys.modules.get("PIL.Image")
    return image_module is not None and isinstance(value, image_module.Image)


def _is_ndarray(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _pil_png(image: Any) -> bytes:
    if image.mode not in _PNG_MODES:
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def array_png(array: Any) -> bytes:
    """PNG (8-bit RGB or gray, fast compression) of an HxWx3 or HxW uint8 array."""
    import numpy as np

    if array.dtype != np.uint8:
        raise ValueError(f"a numpy photo must be uint8, not {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"a numpy photo must be HxWx3 (RGB) or HxW (gray), not {array.shape}")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ValueError("a numpy photo must not be empty")
    rows = np.ascontiguousarray(array).reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()  # filter byte 0 per row
    colour_type = 2 if array.ndim == 3 else 0
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 1))
            + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def float_map(fmap: Any) -> Any:
    """A FloatMap message as a height x width float32 numpy array (None when the map is empty)."""
    if fmap.width <= 0 or fmap.height <= 0:
        return None
    import numpy as np

    return np.frombuffer(fmap.data, dtype="<f4").reshape(fmap.height, fmap.width).astype(np.float32)


def pil_image(data: bytes) -> Any:
    """Encoded image bytes as a loaded PIL image (None when empty)."""
    if not data:
        return None
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image
