"""One HTTP request, for run.sh's checks (no curl needed). Prints the status on the first
line and the body after it.

  request.py METHOD URL [BODY|-] [Header: value ...]
"""
import http.client
import sys
import urllib.parse


def main() -> None:
    method, url = sys.argv[1], sys.argv[2]
    body = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    headers = {}
    for h in sys.argv[4:]:
        name, _, value = h.partition(":")
        headers[name.strip()] = value.strip()
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    path = u.path + (f"?{u.query}" if u.query else "")
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    print(resp.status)
    print(resp.read().decode("utf-8", "replace"))


if __name__ == "__main__":
    main()
