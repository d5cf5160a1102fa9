"""Damage done to files on purpose, as a failing disk or a careless edit would, for fault tests."""

import struct
import zipfile
from pathlib import Path


def flip_tensor_bytes(path: Path, count: int = 64) -> None:
    """XOR ``count`` bytes in the middle of the largest tensor record of a checkpoint file."""
    with zipfile.ZipFile(path) as archive:
        record = max((i for i in archive.infolist() if "/data/" in i.filename),
                     key=lambda i: i.file_size)
    with open(path, "r+b") as handle:
        handle.seek(record.header_offset + 26)  # local header: name and extra-field lengths
        name_len, extra_len = struct.unpack("<HH", handle.read(4))
        start = record.header_offset + 30 + name_len + extra_len + record.file_size // 2
        handle.seek(start)
        flipped = bytes(b ^ 0xFF for b in handle.read(count))
        handle.seek(start)
        handle.write(flipped)
