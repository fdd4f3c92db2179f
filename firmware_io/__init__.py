"""DualCam wire protocol: packet layout, codec, CRC32C, stream decoder and TCP transport.

A standalone driver layer (NumPy + google-crc32c only; it never imports ``dualcam_rt``), so a
firmware engineer can read, test and reuse it on its own. The format is specified in
``docs/protocol.md``.
"""

from .codec import FULL_SCALE_PA, decode_audio, decode_status, encode_audio, encode_packet, encode_status, encode_video
from .packet import AUDIO, HEADER_SIZE, MAGIC, STATUS, VERSION, VIDEO, AudioEncoding, Header, Packet, ProtocolError
from .stream import StreamDecoder, StreamStats
from .transport import TcpClient, TransportError

__all__ = [
    "AUDIO",
    "VIDEO",
    "STATUS",
    "MAGIC",
    "VERSION",
    "HEADER_SIZE",
    "AudioEncoding",
    "Header",
    "Packet",
    "ProtocolError",
    "FULL_SCALE_PA",
    "encode_audio",
    "decode_audio",
    "encode_video",
    "encode_status",
    "decode_status",
    "encode_packet",
    "StreamDecoder",
    "StreamStats",
    "TcpClient",
    "TransportError",
]
