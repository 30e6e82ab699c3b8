"""The pixel size of a PNG or JPEG, read from its header (screenshots report what they hold)."""

from __future__ import annotations

import struct

__all__ = ["image_size"]

_PNG = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (baseline, progressive, ...), which carry the size.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def image_size(head: bytes) -> tuple[int, int]:
    """``(width, height)`` from the first bytes of a PNG or JPEG file."""
    if head.startswith(_PNG) and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    if head.startswith(b"\xff\xd8"):
        at = 2
        while at + 9 <= len(head):
            if head[at] != 0xFF:
                break
            marker = head[at + 1]
            if marker == 0xFF:  # fill byte
                at += 1
                continue
            (length,) = struct.unpack(">H", head[at + 2 : at + 4])
            if marker in _SOF:
                height, width = struct.unpack(">HH", head[at + 5 : at + 9])
                return int(width), int(height)
            at += 2 + length
    raise ValueError("not a PNG or JPEG image, or its header is cut")
