#!/usr/bin/env python3
"""Fails when a test CAPTUREs (or INFOs) a name bound by a structured binding.

doctest's CAPTURE and INFO capture their arguments in a lambda; capturing a structured binding is
C++20 that clang 14 (make test-asan) refuses, while GCC (make test) accepts it. Found here, the
mistake costs seconds instead of a sanitizer build. Usage: check_capture_bindings.py DIR...
"""
import pathlib
import re
import sys

BINDING = re.compile(r"\bauto\s*&{0,2}\s*\[([^\]]+)\]")
LOGGED = re.compile(r"\b(?:CAPTURE|INFO)\(\s*([A-Za-z_]\w*)\s*\)")
REACH = 40  # lines after a binding in which a CAPTURE of it is looked for


def problems(path):
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines):
        for match in BINDING.finditer(line):
            names = {name.strip() for name in match.group(1).split(",")}
            for later in range(number, min(number + REACH, len(lines))):
                for logged in LOGGED.finditer(lines[later]):
                    if logged.group(1) in names:
                        yield f"{path}:{later + 1}: CAPTURE/INFO of '{logged.group(1)}', " \
                              f"a structured binding (line {number + 1}): copy it into a variable"


def main(dirs):
    found = [p for d in dirs for f in sorted(pathlib.Path(d).rglob("*.cpp")) for p in problems(f)]
    for p in found:
        print(p, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
