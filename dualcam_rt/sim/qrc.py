"""A reader of Qt's binary resource files (``.rcc``), where GCompris keeps its sounds.

Layout (Qt's ``rcc`` format, versions 1-3, all integers big-endian):

- header: ``b"qres"``, version (u32), then the offsets of the tree, the data and the names
  (u32 each) and, from version 3, feature flags (u32);
- tree: fixed-size nodes (14 bytes, 22 from version 2 with a u64 modification time), node 0 the
  root. Each starts with its name's offset (u32) and flags (u16: 1 zlib, 2 directory, 4 zstd);
  a directory continues with its child count and the index of its first child (u32 each), a
  file with country and language (u16 each) and its data's offset (u32);
- names: u16 length, u32 hash, then that many UTF-16BE code units;
- data: u32 length, then the bytes; zlib-compressed entries hold Qt's ``qCompress`` layout
  (u32 uncompressed length, then a zlib stream).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from ..errors import BadInput

_COMPRESSED, _DIRECTORY, _ZSTD = 1, 2, 4


class RccFile:
    """The files of one ``.rcc`` resource, by path inside it (``"a/b/c.ogg"``, no leading slash)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._data = self.path.read_bytes()
        d = self._data
        if len(d) < 20 or d[:4] != b"qres":
            raise BadInput(f"{self.path}: not a Qt resource file (no 'qres' header)")
        self.version, self._tree, self._payload, self._names = struct.unpack(">IIII", d[4:20])
        if self.version not in (1, 2, 3):
            raise BadInput(f"{self.path}: unsupported Qt resource version {self.version}")
        self._node_size = 14 if self.version == 1 else 22
        self.entries: dict[str, tuple[int, int]] = {}  # path -> (flags, data offset)
        try:
            self._walk(0, "")
        except (struct.error, IndexError, UnicodeDecodeError) as err:
            raise BadInput(f"{self.path}: corrupt Qt resource tree ({err})") from None

    def _node(self, index: int) -> tuple[int, int, int, int]:
        """(name offset, flags, a, b) of tree node ``index``: a, b = child count, first child for a
        directory; (country << 16 | language), data offset for a file."""
        off = self._tree + index * self._node_size
        return struct.unpack(">IHII", self._data[off : off + 14])

    def _name(self, offset: int) -> str:
        off = self._names + offset
        (length,) = struct.unpack(">H", self._data[off : off + 2])
        return self._data[off + 6 : off + 6 + 2 * length].decode("utf-16-be")

    def _walk(self, index: int, prefix: str, depth: int = 0) -> None:
        if depth > 64:
            raise IndexError("tree deeper than 64 levels (a loop)")
        _, flags, a, b = self._node(index)
        if flags & _DIRECTORY:
            for child in range(b, b + a):
                c_name_off, _, _, _ = self._node(child)
                self._walk(child, f"{prefix}{self._name(c_name_off)}/", depth + 1)
        else:
            self.entries[prefix.rstrip("/")] = (flags, b)

    def read(self, name: str) -> bytes:
        """The bytes of the file ``name``, decompressed; BadInput when absent or unreadable."""
        if name not in self.entries:
            raise BadInput(f"{self.path}: no resource {name!r}")
        flags, offset = self.entries[name]
        off = self._payload + offset
        (size,) = struct.unpack(">I", self._data[off : off + 4])
        blob = self._data[off + 4 : off + 4 + size]
        if len(blob) != size:
            raise BadInput(f"{self.path}: resource {name!r} runs past the end of the file")
        if flags & _ZSTD:
            raise BadInput(f"{self.path}: resource {name!r} is zstd-compressed (not supported)")
        if flags & _COMPRESSED:
            try:
                return zlib.decompress(blob[4:])
            except zlib.error as err:
                raise BadInput(f"{self.path}: resource {name!r}: {err}") from None
        return blob
