"""boto3 helpers for run.sh, with default client settings (checksums included).

Usage:
  s3check.py presign ENDPOINT get|put KEY EXPIRES   print a presigned URL
  s3check.py transfer ENDPOINT SRC KEY DST          upload_file SRC to KEY, download_file KEY to DST
  s3check.py post ENDPOINT SRC KEY                  POST SRC to KEY as a browser form, through a
                                                    presigned POST policy of at most 1 MiB; print the status

ENDPOINT is a endpoint (http://127.0.0.1:PORT) or a URL; for https, set
AWS_CA_BUNDLE to the server's certificate.
"""

import os
import sys

import boto3
import urllib3
from boto3.s3.transfer import TransferConfig
from botocore.client import Config

BUCKET = "fsxn-ontap"


def client(endpoint):
    if endpoint.isdigit():
        endpoint = f"http://127.0.0.1:{endpoint}"
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def presign(endpoint, method, key, expires):
    op = {"get": "get_object", "put": "put_object"}[method]
    url = client(endpoint).generate_presigned_url(
        op, Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=int(expires)
    )
    print(url)


def transfer(endpoint, src, key, dst):
    s3 = client(endpoint)
    config = TransferConfig()  # defaults: multipart above 8 MB, 8 MB parts
    s3.upload_file(src, BUCKET, key, Config=config)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    etag = head["ETag"].strip('"')
    if head["ContentLength"] > config.multipart_threshold and "-" not in etag:
        print(f"FAIL: expected a multipart ETag for {key}, got {etag}", file=sys.stderr)
        sys.exit(1)
    s3.download_file(BUCKET, key, dst, Config=config)
    print(f"{key}: {head['ContentLength']} bytes, ETag {etag}")


def post(endpoint, src, key):
    form = client(endpoint).generate_presigned_post(
        BUCKET, key, Conditions=[["content-length-range", 1, 1 << 20]], ExpiresIn=300
    )
    with open(src, "rb") as f:
        fields = dict(form["fields"])
        # The file goes last: S3 ignores the fields after it.
        fields["file"] = (os.path.basename(src), f.read())
    print(urllib3.request("POST", form["url"], fields=fields).status)


def main(argv):
    cmd, endpoint, *rest = argv
    {"presign": presign, "transfer": transfer, "post": post}[cmd](endpoint, *rest)


if __name__ == "__main__":
    main(sys.argv[1:])
