"""Numbered raw Ethernet frames of sizes from 60 bytes to 64,000 (EtherType 0x88b7, a 4-byte
sequence number, then bytes that depend on it), and a sender of them: run as a script
(`python numbered_frames.py IFACE`), it sends frame(8n + 5) (9018 bytes), four a millisecond,
until its stdin closes, then prints how many it sent. It imports nothing of pushcap or pytest,
so a test can run it as another process (no GIL shared with the capture it tests)."""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time

SIZES = (60, 61, 333, 1514, 4000, 9018, 30000, 64000)


def frame(i: int) -> bytes:
    size = SIZES[i % len(SIZES)]
    head = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x03" + b"\x88\xb7" + struct.pack(">I", i)
    return head + bytes((i + k) % 251 for k in range(size - len(head)))


def send_until_stdin_closes(interface: str) -> int:
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((interface, 0))
        while not done.is_set():
            for _ in range(4):
                s.send(frame(8 * sent + 5))
                sent += 1
            time.sleep(0.001)
    return sent


if __name__ == "__main__":
    print(send_until_stdin_closes(sys.argv[1]))
