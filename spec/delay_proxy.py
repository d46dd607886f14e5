#!/usr/bin/env python3
"""A TCP proxy for the near-cache race test (spec/near_spec.lua).

Usage: delay_proxy.py LISTEN_PORT TARGET_PORT MARKER DELAY_S

Forwards 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT, one thread per
direction and connection. Bytes from the server that contain MARKER are held
for DELAY_S seconds before they are forwarded (and whatever follows them on
that connection waits behind them, in order); everything else passes at once.
So a GET whose reply carries the marked value is answered late, while the
invalidation message sent meanwhile on another connection (the subscriber's)
arrives first: the race made deterministic. Prints "ready" once listening.
"""
import socket
import sys
import threading
import time

LISTEN, TARGET = int(sys.argv[1]), int(sys.argv[2])
MARKER, DELAY = sys.argv[3].encode(), float(sys.argv[4])


def pipe(src, dst, delay_marked):
    tail = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            # the marker may straddle two reads
            if delay_marked and MARKER in tail + data:
                time.sleep(DELAY)
            tail = data[-len(MARKER):]
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client):
    try:
        server = socket.create_connection(("127.0.0.1", TARGET))
    except OSError:
        client.close()
        return
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=pipe, args=(client, server, False), daemon=True).start()
    threading.Thread(target=pipe, args=(server, client, True), daemon=True).start()


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", LISTEN))
    ls.listen(64)
    print("ready", flush=True)
    while True:
        client, _ = ls.accept()
        serve(client)


if __name__ == "__main__":
    main()
