"""The recipe's client code, verbatim, against a running `tread s3 serve`.

Usage: recipe.py PORT EXPECTED_DIR

EXPECTED_DIR mirrors what must be under `dataset/tyre/` in the bucket
(`EXPECTED_DIR/good/a.png` is the object `dataset/tyre/good/a.png`). Asserts
the recipe's loop sees exactly those keys with exactly those bytes, and that
the recipe's label trick (`key[13:]`, first segment = class) works.
"""

import os
import sys

PORT = int(sys.argv[1])
EXPECTED_DIR = sys.argv[2]

expected = {}
for dirpath, _dirs, files in os.walk(EXPECTED_DIR):
    for name in files:
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, EXPECTED_DIR).replace(os.sep, "/")
        with open(path, "rb") as f:
            expected["dataset/tyre/" + rel] = f.read()

seen = {}

# ---- the recipe, verbatim (only the port is filled in) ----
import boto3
from botocore.client import Config
s3 = boto3.resource('s3', endpoint_url=f'http://127.0.0.1:{PORT}', use_ssl=False, config=Config(signature_version='s3v4', s3={'addressing_style': 'path'}))
bucket = s3.Bucket('fsxn-ontap')
for obj in bucket.objects.filter(Prefix='dataset/tyre').all():
    key = obj.key
    body = bucket.Object(key).get()['Body'].read()
    # ---- end of the recipe; record what it saw ----
    assert key not in seen, f"key listed twice: {key!r}"
    seen[key] = body


def fail(msg):
    print(f"FAIL: recipe: {msg}", file=sys.stderr)
    sys.exit(1)


if set(seen) != set(expected):
    fail(
        "keys differ\n  missing:    %s\n  unexpected: %s"
        % (sorted(set(expected) - set(seen)), sorted(set(seen) - set(expected)))
    )
for key, body in expected.items():
    if seen[key] != body:
        fail(f"bytes differ for {key!r}: got {len(seen[key])} bytes, want {len(body)}")

# The recipe's labelling: strip 'dataset/tyre/' (13 characters), the first
# segment is the class.
labels = {}
for key in seen:
    label = key[13:].split('/')[0]
    labels[label] = labels.get(label, 0) + 1
want_labels = {}
for key in expected:
    label = key[len("dataset/tyre/"):].split("/")[0]
    want_labels[label] = want_labels.get(label, 0) + 1
if labels != want_labels or set(labels) != {"good", "defective"}:
    fail(f"labels {labels} != expected {want_labels}")

print(f"recipe saw {len(seen)} objects, labels {dict(sorted(labels.items()))}")
