"""Writes key files for the invalid-key runs. Stdlib only.

  gen_keys.py unknown COUNT OUT    well-formed keys (sk- + 43 base62 + 6-char CRC-32
                                   checksum, exactly as apikeyd makes them) that no database
                                   holds: each one costs the server a real look-up.
  gen_keys.py malformed COUNT OUT  strings a client might send by mistake, all refused
                                   without a look-up: a bad checksum (one character changed),
                                   one character short, one too many, a wrong prefix.
"""
import secrets
import sys
import zlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def checksum(head: str) -> str:
    value = zlib.crc32(head.encode())  # CRC-32 IEEE, reflected: the same as apikeyd's
    digits = []
    for _ in range(6):
        digits.append(ALPHABET[value % 62])
        value //= 62
    return "".join(reversed(digits))


def well_formed() -> str:
    head = "sk-" + "".join(secrets.choice(ALPHABET) for _ in range(43))
    return head + checksum(head)


def malformed(i: int) -> str:
    key = well_formed()
    kind = i % 4
    if kind == 0:  # one checksum character changed
        last = key[-1]
        return key[:-1] + ALPHABET[(ALPHABET.index(last) + 1) % 62]
    if kind == 1:
        return key[:-1]
    if kind == 2:
        return key + "0"
    return "pk-" + key[3:]


def main() -> None:
    kind, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if kind == "unknown":
        keys = [well_formed() for _ in range(count)]
    elif kind == "malformed":
        keys = [malformed(i) for i in range(count)]
    else:
        sys.exit(f"unknown kind {kind!r}")
    with open(out, "w") as f:
        f.write("\n".join(keys) + "\n")


if __name__ == "__main__":
    main()
