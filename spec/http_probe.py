#!/usr/bin/env python3
# http_probe.py HOST PORT HEX_REQUEST [WAIT_SECONDS] -- a raw HTTP client
# for spec/metrics_spec.lua: connects, sends the request (hex-encoded, so
# any bytes pass a shell), sends nothing more, and reads until the server
# closes the connection or WAIT_SECONDS (default 5) pass. Prints one line
#   status=<code|none|refused> closed=<yes|no> elapsed=<seconds> bytes=<n>
# and then the response as received.
import socket
import sys
import time

host, port, req = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
wait = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(wait)
start = time.monotonic()
try:
    s.connect((host, port))
except OSError:
    print("status=refused closed=yes elapsed=0 bytes=0")
    sys.exit(0)
data, closed = b"", False
try:
    if req:
        s.sendall(req)
    deadline = start + wait
    while True:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(65536)
        if not chunk:
            closed = True
            break
        data += chunk
except (socket.timeout, TimeoutError):
    pass
except ConnectionResetError:
    closed = True
elapsed = time.monotonic() - start
status = "none"
if data.startswith(b"HTTP/"):
    status = data.split(b" ", 2)[1].decode("ascii", "replace")
print("status=%s closed=%s elapsed=%.3f bytes=%d"
      % (status, "yes" if closed else "no", elapsed, len(data)))
sys.stdout.write(data.decode("latin-1"))
