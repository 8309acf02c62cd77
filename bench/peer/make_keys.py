"""Creates COUNT keys with APIKey.objects.create_key(name=...) and writes their plaintexts,
one per line, to OUT. Usage: python make_keys.py COUNT OUT (run from bench/peer, after
`manage.py migrate`)."""
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerproj.settings")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
django.setup()

from django.db import transaction  # noqa: E402
from rest_framework_api_key.models import APIKey  # noqa: E402


def main() -> None:
    count, out = int(sys.argv[1]), sys.argv[2]
    keys = []
    # One transaction: the library's own create path, without one fsync per key.
    with transaction.atomic():
        for i in range(count):
            _, key = APIKey.objects.create_key(name=f"bench-{i}")
            keys.append(key)
    with open(out, "w") as f:
        f.write("\n".join(keys) + "\n")
    print(f"created {count} peer keys", file=sys.stderr)


if __name__ == "__main__":
    main()
