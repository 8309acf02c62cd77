"""Small read-only questions to an apikeyd database file (stdlib sqlite3).

  dbstat.py DB maxid                 largest api_keys.id
  dbstat.py DB revoked LO HI         how many keys with LO <= id <= HI are revoked
  dbstat.py DB count                 rows in api_keys
"""
import sqlite3
import sys


def main() -> None:
    db, what = sys.argv[1], sys.argv[2]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    if what == "maxid":
        (v,) = conn.execute("SELECT coalesce(max(id), 0) FROM api_keys").fetchone()
    elif what == "count":
        (v,) = conn.execute("SELECT count(*) FROM api_keys").fetchone()
    elif what == "revoked":
        lo, hi = int(sys.argv[3]), int(sys.argv[4])
        (v,) = conn.execute(
            "SELECT count(*) FROM api_keys WHERE id BETWEEN ? AND ? AND status = 'revoked'", (lo, hi)
        ).fetchone()
    else:
        sys.exit(f"unknown question {what!r}")
    print(v)


if __name__ == "__main__":
    main()
