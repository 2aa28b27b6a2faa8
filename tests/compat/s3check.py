"""boto3 helpers for run.sh, with default client settings (checksums included).

Usage:
  s3check.py presign ENDPOINT get|put KEY EXPIRES   print a presigned URL
  s3check.py transfer ENDPOINT SRC KEY DST          upload_file SRC to KEY (SHA256 checksums), download_file KEY to DST
  s3check.py post ENDPOINT SRC KEY [SENT]           POST SRC to KEY as a browser form, through a
                                                    presigned POST policy of at most 1 MiB (the form
                                                    names SENT as its key if given); print the status
  s3check.py post-created ENDPOINT SRC KEY          the same, asking for a 201; print the status and document
  s3check.py date-signed ENDPOINT KEY               GET KEY signed with SigV4 timed by a Date header
                                                    alone (no X-Amz-Date); print the status and size

ENDPOINT is a endpoint (http://127.0.0.1:PORT) or a URL; for https, set
AWS_CA_BUNDLE to the server's certificate.
"""

import datetime
import email.utils
import hashlib
import hmac
import os
import sys
import urllib.parse

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
    s3.upload_file(src, BUCKET, key, Config=config, ExtraArgs={"ChecksumAlgorithm": "SHA256"})
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    etag = head["ETag"].strip('"')
    if head["ContentLength"] > config.multipart_threshold:
        parts = etag.partition("-")[2]
        checksum = head.get("ChecksumSHA256", "")
        if not parts:
            print(f"FAIL: expected a multipart ETag for {key}, got {etag}", file=sys.stderr)
            sys.exit(1)
        if not checksum.endswith(f"-{parts}") or head.get("ChecksumType") != "COMPOSITE":
            print(f"FAIL: expected a composite SHA256 of {parts} parts, got {checksum!r} "
                  f"of type {head.get('ChecksumType')}", file=sys.stderr)
            sys.exit(1)
    s3.download_file(BUCKET, key, dst, Config=config)
    print(f"{key}: {head['ContentLength']} bytes, ETag {etag}")


def post(endpoint, src, key, sent=None):
    answer = post_form(endpoint, src, key, sent)
    print(answer.status)


def post_created(endpoint, src, key):
    """The form asks for a 201 answer, which names the key it stored."""
    answer = post_form(endpoint, src, key, status="201")
    print(answer.status, answer.data.decode())


def post_form(endpoint, src, key, sent=None, status=None):
    conditions = [["content-length-range", 1, 1 << 20]]
    extra = {}
    if status is not None:
        conditions.append({"success_action_status": status})
        extra["success_action_status"] = status
    form = client(endpoint).generate_presigned_post(
        BUCKET, key, Fields=extra, Conditions=conditions, ExpiresIn=300
    )
    with open(src, "rb") as f:
        fields = dict(form["fields"])
        if sent is not None:
            fields["key"] = sent
        # The file goes last: S3 ignores the fields after it.
        fields["file"] = (os.path.basename(src), f.read())
    return urllib3.request("POST", form["url"], fields=fields)


def date_signed(endpoint, key):
    """SigV4 allows the request time in Date instead of X-Amz-Date; botocore
    always sends X-Amz-Date, so this request is signed here by hand."""
    host = f"127.0.0.1:{endpoint}"
    now = datetime.datetime.now(datetime.timezone.utc)
    date, day = email.utils.format_datetime(now, usegmt=True), now.strftime("%Y%m%d")
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    path = urllib.parse.quote(f"/{BUCKET}/{key}", safe="/-_.~")
    headers = {"date": date, "host": host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        ["GET", path, ""] + [f"{h}:{headers[h]}" for h in sorted(headers)] + ["", signed, "UNSIGNED-PAYLOAD"]
    )
    scope = f"{day}/us-east-1/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    credential = f"{os.environ['AWS_ACCESS_KEY_ID']}/{scope}"
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
    )
    answer = urllib3.request("GET", f"http://{host}{path}", headers=headers)
    print(answer.status, len(answer.data))


def main(argv):
    cmd, endpoint, *rest = argv
    commands = {
        "presign": presign,
        "transfer": transfer,
        "post": post,
        "post-created": post_created,
        "date-signed": date_signed,
    }
    commands[cmd](endpoint, *rest)


if __name__ == "__main__":
    main(sys.argv[1:])
