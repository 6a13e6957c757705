#!/usr/bin/env python3
"""Validates an AsyncAPI document against the AsyncAPI JSON Schema (the one @asyncapi/specs
publishes, as scripts/install-deps.sh installs it; the "without $id" form, whose references are
all local). Exit 0 and "valid" when it conforms; exit 1 and one line per violation otherwise;
exit 2 when a file cannot be read.

    asyncapi_check.py SCHEMA DOCUMENT
"""
import json
import sys
import warnings

import jsonschema


def main(argv):
    warnings.simplefilter("ignore", DeprecationWarning)  # RefResolver, deprecated since 4.18
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            schema = json.load(f)
        with open(argv[2]) as f:
            document = json.load(f)
    except (OSError, ValueError) as e:
        print(f"asyncapi_check: {e}", file=sys.stderr)
        return 2
    # Every reference in this schema is local (#/definitions/...). Debian 12's jsonschema (4.10)
    # first searches the schema for subschemas with an "$id" and fails on the schema's property
    # *named* "$id" (TypeError: unhashable type: 'dict'); resolving only through the document,
    # as later versions do for local references, sidesteps that search.
    resolver = jsonschema.RefResolver.from_schema(schema)
    resolver._find_in_subschemas = lambda url: None
    validator = jsonschema.Draft7Validator(schema, resolver=resolver)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    for e in errors:
        where = "/".join(str(p) for p in e.path) or "(document)"
        print(f"{where}: {e.message[:300]}")
    if errors:
        return 1
    print("valid")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
