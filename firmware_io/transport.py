"""TCP transport: connect, read, decode, and reconnect with exponential backoff."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

from .packet import Packet
from .stream import StreamDecoder


class TransportError(ConnectionError):
    """The device cannot be reached, or sent no valid packet for too long."""


class TcpClient:
    """A wire-protocol client over TCP.

    ``open(timeout)`` makes one connection and waits for the first valid packet (a device that
    answers); ``packets()`` then yields verified packets. When the connection drops, or no valid
    packet arrives for ``read_timeout`` seconds (silence or garbage), it reconnects with
    exponential backoff (``backoff_s`` doubling up to ``max_backoff_s``) and gives up with
    ``TransportError`` once ``give_up_s`` seconds have passed without a valid packet.
    ``reconnect=False`` gives up at the first failure instead.
    """

    def __init__(
        self,
        host: str,
        port: int,
        read_timeout: float = 2.0,
        reconnect: bool = True,
        give_up_s: float = 30.0,
        backoff_s: float = 0.1,
        max_backoff_s: float = 2.0,
        chunk_bytes: int = 1 << 16,
    ):
        self.host, self.port = host, port
        self.read_timeout = read_timeout
        self.reconnect = reconnect
        self.give_up_s = give_up_s
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.chunk_bytes = chunk_bytes
        self.decoder = StreamDecoder()
        self.connections = 0  # successful connects
        self.attempts = 0  # connect attempts, successful or not
        self.last_error: str | None = None
        self._sock: socket.socket | None = None
        self._ready: list[Packet] = []
        self._closed = False

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)

    def open(self, timeout: float) -> None:
        """Connect and wait up to ``timeout`` s for a valid packet; TransportError otherwise."""
        deadline = time.monotonic() + timeout
        try:
            sock = self._connect(timeout)
        except OSError as err:
            raise TransportError(f"cannot connect to {self.host}:{self.port}: {err.strerror or err}") from None
        while not self._ready:
            left = deadline - time.monotonic()
            if left <= 0:
                self._disconnect()
                raise TransportError(
                    f"{self.host}:{self.port} sent no valid packet within {timeout:g} s" + self._decoder_summary()
                )
            sock.settimeout(left)
            try:
                data = sock.recv(self.chunk_bytes)
            except TimeoutError:
                continue  # the deadline check above reports it
            except OSError as err:
                self._disconnect()
                raise TransportError(
                    f"{self.host}:{self.port}: {err or 'timed out'}" + self._decoder_summary()
                ) from None
            if not data:
                self._disconnect()
                raise TransportError(f"{self.host}:{self.port} closed the connection" + self._decoder_summary())
            self._ready = self.decoder.feed(data)

    def packets(self) -> Iterator[Packet]:
        """Verified packets in arrival order, until ``close()`` or TransportError."""
        last_good = time.monotonic()
        backoff = self.backoff_s
        while not self._closed:
            if self._ready:
                ready, self._ready = self._ready, []
                last_good = time.monotonic()
                backoff = self.backoff_s
                yield from ready
                continue
            if self._sock is None:
                try:
                    self._connect(min(self.read_timeout, max(0.05, self.give_up_s)))
                except OSError as err:
                    self._fail_or_wait(
                        f"cannot connect to {self.host}:{self.port}: {err.strerror or err}", last_good, backoff
                    )
                    backoff = min(2 * backoff, self.max_backoff_s)
                    continue
            sock = self._sock
            if sock is None:  # close() ran in another thread
                continue
            try:
                data = sock.recv(self.chunk_bytes)
                if not data:
                    raise ConnectionError("connection closed by the device")
            except OSError as err:
                if self._closed:
                    return
                self._disconnect()
                self._fail_or_wait(f"{self.host}:{self.port}: {err or 'timed out'}", last_good, backoff)
                backoff = min(2 * backoff, self.max_backoff_s)
                continue
            self._ready = self.decoder.feed(data)
            if not self._ready and time.monotonic() - last_good > self.read_timeout:
                self._disconnect()  # bytes, but no valid packet: garbage or a stuck device
                self._fail_or_wait(
                    f"no valid packet from {self.host}:{self.port} for {self.read_timeout:g} s", last_good, backoff
                )
                backoff = min(2 * backoff, self.max_backoff_s)

    def close(self) -> None:
        """Stop ``packets()`` (also from another thread) and close the socket; safe to call twice."""
        self._closed = True
        self._disconnect()

    def _connect(self, timeout: float) -> socket.socket:
        self.attempts += 1
        self._sock = sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.settimeout(self.read_timeout)
        self.connections += 1
        return sock

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            self.decoder.discard_pending()

    def _fail_or_wait(self, message: str, last_good: float, backoff: float) -> None:
        self.last_error = message
        waited = time.monotonic() - last_good
        if not self.reconnect or waited + backoff > self.give_up_s:
            raise TransportError(message + self._decoder_summary())
        time.sleep(backoff)

    def _decoder_summary(self) -> str:
        s = self.decoder.stats
        if not (s.bytes_dropped or s.crc_errors or s.malformed):
            return ""
        return f" ({s.bytes_dropped} bytes dropped, {s.crc_errors} CRC errors, {s.malformed} malformed packets)"
