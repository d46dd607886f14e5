"""A fake Redis for specs that need a reply no real server gives.

Usage: python3 spec/fake_redis.py PORTFILE REPLY_TO_GET
Listens on 127.0.0.1 (a free port, written to PORTFILE), answers the
handshake and cachert's probe like a server would, and every GET with
REPLY_TO_GET (raw RESP, e.g. ':1' for an integer). Runs until killed.
"""
import socket
import sys
import threading

REPLIES = {
    b"PING": b"+PONG\r\n",
    b"EXISTS": b":0\r\n",
    b"SET": b"$-1\r\n",
    b"UNLINK": b":0\r\n",
    b"SCAN": b"*2\r\n$1\r\n0\r\n*0\r\n",
    b"CLIENT": b"+OK\r\n",
}


def commands(conn):
    """Yields the name of each RESP command read from conn."""
    buf = b""
    while True:
        while True:
            try:
                lines = buf.split(b"\r\n")
                argc = int(lines[0][1:])
                need = 1 + 2 * argc
                if len(lines) <= need:
                    raise ValueError
                yield lines[2].upper()
                buf = b"\r\n".join(lines[need:])
            except (ValueError, IndexError):
                break
        data = conn.recv(65536)
        if not data:
            return
        buf += data


def serve(conn, get_reply):
    with conn:
        for name in commands(conn):
            conn.sendall(get_reply if name == b"GET" else REPLIES.get(name, b"+OK\r\n"))


def main():
    portfile, reply = sys.argv[1], sys.argv[2].encode() + b"\r\n"
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    with open(portfile, "w") as f:
        f.write(str(srv.getsockname()[1]))
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, reply), daemon=True).start()


main()
