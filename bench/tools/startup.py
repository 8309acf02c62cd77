"""Start-up time: polls GET URL every 10 ms until it answers 200 and prints the
milliseconds since T0_NS (a time.time_ns()/`date +%s%N` value taken just before the
server was spawned). Fails if PID exits or TIMEOUT seconds pass. With "any" as fifth
argument, any answer below 500 counts as up (for the peer, whose only route needs a key).

  startup.py URL T0_NS PID [TIMEOUT] [any]"""
import http.client
import os
import sys
import time
import urllib.parse


def main() -> None:
    url, t0, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 120.0
    any_status = len(sys.argv) > 5 and sys.argv[5] == "any"
    u = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=1)
            conn.request("GET", u.path or "/")
            status = conn.getresponse().status
            conn.close()
            if status == 200 or (any_status and status < 500):
                print(f"{(time.time_ns() - t0) / 1e6:.1f}")
                return
        except OSError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(f"server (pid {pid}) exited before answering {url}")
        if time.monotonic() > deadline:
            sys.exit(f"no 200 from {url} within {timeout} s")
        time.sleep(0.01)


if __name__ == "__main__":
    main()
