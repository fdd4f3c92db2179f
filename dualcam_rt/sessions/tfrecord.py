"""Reading TFRecord files of ``tf.train.SequenceExample``s without TensorFlow.

TFRecord framing (per record): uint64 length, uint32 masked CRC32C of the length bytes, the
data, uint32 masked CRC32C of the data; all little-endian; the file may be GZIP-compressed.
The SequenceExample is decoded with a minimal protobuf wire-format reader that knows only the
messages of ``tensorflow/core/example/{example,feature}.proto``:

    SequenceExample { Features context = 1; FeatureLists feature_lists = 2; }
    Features        { map<string, Feature> feature = 1; }          (map entry: key = 1, value = 2)
    FeatureLists    { map<string, FeatureList> feature_list = 1; }
    FeatureList     { repeated Feature feature = 1; }
    Feature         { oneof { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }  FloatList { repeated float value = 1; }
    Int64List { repeated int64 value = 1; }
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google_crc32c

from ..errors import BadInput

_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data``."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(path: str | Path) -> Iterator[bytes]:
    """The records of a TFRecord file (GZIP or plain), each checked against its CRCs."""
    path = Path(path)
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            n = 0
            while header := f.read(12):
                if len(header) < 12:
                    raise BadInput(f"{path}: truncated record header at record {n}")
                length, length_crc = struct.unpack("<QI", header)
                if masked_crc32c(header[:8]) != length_crc:
                    raise BadInput(f"{path}: corrupt length (CRC mismatch) at record {n}")
                data = f.read(length)
                footer = f.read(4)
                if len(data) < length or len(footer) < 4:
                    raise BadInput(f"{path}: truncated record {n}")
                if masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                    raise BadInput(f"{path}: corrupt data (CRC mismatch) in record {n}")
                yield data
                n += 1
    except (OSError, EOFError) as err:
        raise BadInput(f"cannot read {path}: {err}") from err


# -- protobuf wire format --------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise BadInput("malformed protobuf: truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BadInput("malformed protobuf: varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message: an int for varint, bytes for fixed and length-delimited
    (the wire type says which)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise BadInput(f"malformed protobuf: unsupported wire type {wire}")
        if pos > len(buf):
            raise BadInput("malformed protobuf: field runs past the end")
        yield number, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_feature(buf: bytes) -> list:
    """The values of a ``Feature``: a list of bytes, floats or ints."""
    for number, _, kind in _fields(buf):
        values: list = []
        for n, wire, v in _fields(kind):
            if n != 1:
                continue
            if number == 1:  # BytesList
                values.append(bytes(v))
            elif number == 2:  # FloatList, packed (wire 2) or not (wire 5)
                values.extend(struct.unpack(f"<{len(v) // 4}f", v) if wire == 2 else struct.unpack("<f", v))
            elif number == 3:  # Int64List, packed or not
                if wire == 2:
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        values.append(_signed64(x))
                else:
                    values.append(_signed64(v))
        return values
    return []


def _map_entries(buf: bytes) -> Iterator[tuple[str, bytes]]:
    for number, _, entry in _fields(buf):
        if number != 1:
            continue
        key, value = "", b""
        for n, _, v in _fields(entry):
            if n == 1:
                key = bytes(v).decode()
            elif n == 2:
                value = bytes(v)
        yield key, value


def parse_sequence_example(data: bytes) -> tuple[dict[str, list], dict[str, list[list]]]:
    """(context, feature_lists) of a serialised SequenceExample: name -> values, and
    name -> one list of values per step."""
    context: dict[str, list] = {}
    lists: dict[str, list[list]] = {}
    for number, _, value in _fields(data):
        if number == 1:
            for key, feature in _map_entries(value):
                context[key] = decode_feature(feature)
        elif number == 2:
            for key, feature_list in _map_entries(value):
                lists[key] = [decode_feature(f) for n, _, f in _fields(feature_list) if n == 1]
    return context, lists
