#!/usr/bin/env python3
"""Puts the answers `scripts/readme-examples.sh` printed into README.md's examples.

    bash scripts/readme-examples.sh > /tmp/examples.txt
    python3 scripts/readme_examples_update.py /tmp/examples.txt   # rewrites README.md

Every `$ command` line in a ```console block whose command the script ran gets the script's
answer below it (replacing what was there), with plaintext keys and session tokens shortened
with `…` as the README shows them. A command the script did not run is left alone and named.
"""
import re
import sys

KEY = re.compile(r"\b((?:sk-|[A-Za-z][A-Za-z0-9_]{0,14}[-_])[0-9A-Za-z]{8})[0-9A-Za-z]{41}\b")
JWT = re.compile(r"(eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{11})[A-Za-z0-9_.-]*")


def shorten(line):
    return JWT.sub(r"\1…", KEY.sub(r"\1…", line))


def answers(path):
    out, cmd, lines = {}, None, []
    for raw in open(path, encoding="utf-8").read().split("\n"):
        if raw.startswith("$ "):
            if cmd is not None:
                out[cmd] = lines
            cmd, lines = raw[2:], []
        elif raw.startswith("  ") and cmd is not None:
            lines.append(shorten(raw[2:]))
    if cmd is not None:
        out[cmd] = lines
    return out


def main():
    ran = answers(sys.argv[1])
    readme = open("README.md", encoding="utf-8").read().split("\n")
    result, i, in_console, missing = [], 0, False, []
    while i < len(readme):
        line = readme[i]
        result.append(line)
        i += 1
        if line.startswith("```console"):
            in_console = True
        elif line.startswith("```"):
            in_console = False
        elif in_console and line.startswith("$ "):
            cmd = line[2:]
            if cmd in ran:
                while i < len(readme) and not readme[i].startswith("$ ") and not readme[i].startswith("```"):
                    i += 1
                result.extend(ran[cmd])
            else:
                missing.append(cmd)
    open("README.md", "w", encoding="utf-8").write("\n".join(result))
    for cmd in missing:
        print(f"not run by the script, left as it was: {cmd}")


if __name__ == "__main__":
    main()
