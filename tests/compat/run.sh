#!/usr/bin/env bash
# Client compatibility of `tread s3 serve` (and, last, `tread serve`), with
# stock boto3 and AWS CLI from PyPI at their default settings (CRC checksums,
# aws-chunked trailers).
#
# Builds the recipe's world (volume vol1, NAS bucket fsxn-ontap, user s3user in
# group s3group with FullAccess) in a temp dir, serves it, and runs:
#   a. the recipe's boto3 listing/reading loop, verbatim (recipe.py)
#   b. aws s3 cp of a 150 MB file (multipart) up and down
#   c. aws s3 sync of a nested tree (spaces, unicode) up and down
#   d. aws s3 ls --recursive
#   e. presigned GET / PUT / expired URLs with curl
#   f. boto3 upload_file / download_file (multipart) of 20 MB
#   g. uploads over HTTPS (self-signed cert), where botocore streams
#      aws-chunked bodies with a CRC32 trailer (over HTTP it sends a header)
#   h. the recipe's predictor: boto3's sagemaker-runtime invoke_endpoint
#      against `tread serve`, on a model trained from the bucket
#   i. Triton's tritonclient[http] (the usual v2 client) infers on that
#      endpoint with its default binary_data=True (triton.py)
#
# Usage: tests/compat/run.sh        (from any directory)
# Env:   TREAD_BIN  the tread binary (default: target/release/tread)
#        PYTHON     interpreter for the venv (default: python3)
#        KEEP_TMP=1 keep the temp dir (printed) instead of deleting it
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TREAD_BIN=${TREAD_BIN:-$ROOT/target/release/tread}
case $TREAD_BIN in /*) ;; *) TREAD_BIN=$PWD/$TREAD_BIN ;; esac
VENV=$HERE/.venv
BUCKET=fsxn-ontap

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
pass() {
    echo "PASS: $*"
}
trap 'echo "FAIL: command failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

[[ -x $TREAD_BIN ]] || fail "no tread binary at $TREAD_BIN (build it: cargo build --release -p tread, or set TREAD_BIN)"

# ---- 1. the client venv ------------------------------------------------------
if ! { [[ -x $VENV/bin/python && -x $VENV/bin/aws ]] &&
    "$VENV/bin/python" -c 'import boto3, awscli, tritonclient.http' 2>/dev/null; }; then
    echo "setting up $VENV (boto3, awscli, tritonclient[http] from PyPI)…"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check boto3 awscli 'tritonclient[http]'
fi
PY=$VENV/bin/python
AWS=$VENV/bin/aws
echo "clients: $("$PY" -c 'import boto3, botocore; print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}")'), $("$AWS" --version 2>&1 | cut -d' ' -f1), tritonclient $("$PY" -c 'from importlib.metadata import version; print(version("tritonclient"))')"

# ---- 2. the recipe's world and the server ---------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tread-compat.XXXXXX")
SERVER_PIDS=()
LOGS=()
cleanup() {
    local rc=$? pid log
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if ((rc != 0)); then
        for log in "${LOGS[@]}"; do
            [[ -s $log ]] || continue
            echo "---- server log (last 40 lines of $log) ----" >&2
            tail -n 40 "$log" >&2
            echo "----" >&2
        done
    fi
    if [[ ${KEEP_TMP:-} == 1 ]]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT

export TREAD_DATA_DIR=$TMP/data
VOL=$TMP/vol1
tread() { "$TREAD_BIN" "$@" || fail "tread $* failed (exit $?)"; }

tread s3 volume create vol1 --path "$VOL" >/dev/null
tread s3 bucket create "$BUCKET" --volume vol1 >/dev/null
KEYS=$(tread s3 user create s3user --json)
tread s3 group create s3group --users s3user --policy FullAccess >/dev/null
read -r S3USER ACCESS_KEY SECRET_KEY < <("$PY" -c '
import json, sys
k = json.loads(sys.stdin.read())
print(k["user"], k["access_key_id"], k["secret_access_key"])' <<<"$KEYS")
[[ $S3USER == s3user && -n $ACCESS_KEY && -n $SECRET_KEY ]] || fail "bad user create --json output: $KEYS"

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# start_server LOG URL [serve options…]: serve in the background, wait until URL answers.
start_server() {
    local log=$1 url=$2 pid i
    shift 2
    "$TREAD_BIN" s3 serve "$@" >"$log" 2>&1 &
    pid=$!
    SERVER_PIDS+=("$pid")
    LOGS+=("$log")
    for ((i = 0; ; i++)); do
        kill -0 "$pid" 2>/dev/null || fail "tread s3 serve $* exited at startup"
        curl -s -o /dev/null --max-time 2 ${CURL_CA:+--cacert "$CURL_CA"} "$url/" && break
        ((i < 100)) || fail "tread s3 serve $* not answering on $url after 10 s"
        sleep 0.1
    done
}
PORT=$(free_port)
EP=http://127.0.0.1:$PORT
start_server "$TMP/server.log" "$EP" --listen "127.0.0.1:$PORT"
pass "setup: volume vol1, bucket $BUCKET, user s3user in s3group (FullAccess), serving on $EP"

# Stock client settings; keep any ~/.aws config of the caller out of it.
export AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=$TMP/no-aws-config AWS_SHARED_CREDENTIALS_FILE=$TMP/no-aws-credentials
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_REQUEST_CHECKSUM_CALCULATION \
    AWS_RESPONSE_CHECKSUM_VALIDATION AWS_CA_BUNDLE 2>/dev/null || true
s3() { "$AWS" --endpoint-url "$EP" s3 "$@"; }
rand() { head -c "$2" /dev/urandom >"$1"; }

# ---- a. the recipe's loop over dataset/tyre --------------------------------------
EXP=$TMP/expected-tyre        # mirror of what dataset/tyre/ must hold
mkdir -p "$EXP/good" "$EXP/defective/batch 2"
# Through S3 (AWS CLI)...
rand "$EXP/good/tyre_001.jpg" 3001
rand "$EXP/good/tyre_002.jpg" 70001
: >"$EXP/good/empty.jpg"
rand "$EXP/defective/tyre_101.jpg" 4242
for f in good/tyre_001.jpg good/tyre_002.jpg good/empty.jpg defective/tyre_101.jpg; do
    s3 cp --only-show-errors "$EXP/$f" "s3://$BUCKET/dataset/tyre/$f"
done
# ...and straight into the volume, as an NFS/SMB user would.
mkdir -p "$VOL/dataset/tyre/good" "$VOL/dataset/tyre/defective/batch 2"
rand "$EXP/good/tyre_003.jpg" 5000
rand "$EXP/defective/tyre_102.jpg" 6100
rand "$EXP/defective/batch 2/tyre_103.jpg" 777
for f in good/tyre_003.jpg defective/tyre_102.jpg "defective/batch 2/tyre_103.jpg"; do
    cp "$EXP/$f" "$VOL/dataset/tyre/$f"
done
# A decoy outside the prefix.
echo decoy >"$TMP/decoy.txt"
s3 cp --only-show-errors "$TMP/decoy.txt" "s3://$BUCKET/dataset/other/decoy.txt"
"$PY" "$HERE/recipe.py" "$PORT" "$EXP" || fail "recipe code (a) did not see the expected objects"
pass "a. recipe boto3 loop sees exactly the 7 dataset/tyre objects (4 via S3, 3 dropped in the volume), exact bytes, labels good/defective"

# ---- b. aws s3 cp of 150 MB (multipart) ---------------------------------------------
BIG=$TMP/big.bin
rand "$BIG" 150M
(cd "$TMP" && s3 cp --only-show-errors big.bin "s3://$BUCKET/big.bin")
cmp "$BIG" "$VOL/big.bin" || fail "150 MB upload: $VOL/big.bin differs from the source"
[[ -f $VOL/big.bin && ! -L $VOL/big.bin ]] || fail "$VOL/big.bin is not a plain file"
# A completed upload keeps only its record (for a retried Complete) for an hour.
leftovers=$(find "$VOL/.tread/tmp" "$VOL/.tread/multipart" -mindepth 1 -type f ! -name completed.json 2>/dev/null || true)
[[ -z $leftovers ]] || fail "leftovers after a completed multipart upload:"$'\n'"$leftovers"
s3 cp --only-show-errors "s3://$BUCKET/big.bin" "$TMP/big.down"
cmp "$BIG" "$TMP/big.down" || fail "150 MB download differs from the source"
pass "b. aws s3 cp 150 MB up (multipart) and down: byte-exact, plain file in the volume, no leftovers in .tread/{tmp,multipart}"
rm -f "$TMP/big.down"

# ---- c. aws s3 sync of a nested tree ------------------------------------------------
SRC=$TMP/sync-src DST=$TMP/sync-dst
mkdir -p "$SRC/a/b/c" "$SRC/with space/sub dir" "$SRC/ünïcødé/日本語" "$SRC/a/empty-sibling/x"
echo top >"$SRC/top.txt"
echo deep >"$SRC/a/b/c/deep.txt"
rand "$SRC/a/b/other.bin" 123457
echo plus >"$SRC/a/plus+sign.txt"
echo spaced >"$SRC/with space/file name.txt"
echo "sub spaced" >"$SRC/with space/sub dir/x y.txt"
echo nihongo >"$SRC/ünïcødé/日本語/ファイル.txt"
echo accents >"$SRC/ünïcødé/café crème.txt"
echo x >"$SRC/a/empty-sibling/x/only.txt"
nsrc=$(find "$SRC" -type f | wc -l)
out=$(s3 sync --no-progress "$SRC" "s3://$BUCKET/synced/")
nup=$(grep -c '^upload:' <<<"$out" || true)
((nup == nsrc)) || fail "sync up: $nup uploads for $nsrc files:"$'\n'"$out"
s3 sync --only-show-errors "s3://$BUCKET/synced/" "$DST"
diff -r "$SRC" "$DST" || fail "sync down: tree differs from the source"
diff -r "$SRC" "$VOL/synced" || fail "sync up: the volume's synced/ differs from the source"
out=$(s3 sync --no-progress "$SRC" "s3://$BUCKET/synced/")
[[ -z $out ]] || fail "second sync up should transfer nothing, but:"$'\n'"$out"
out=$(s3 sync --no-progress "s3://$BUCKET/synced/" "$DST")
[[ -z $out ]] || fail "second sync down should transfer nothing, but:"$'\n'"$out"
pass "c. aws s3 sync up and down of $nsrc files (nested, spaces, unicode, '+'): diff -r equal, re-sync is a no-op"

# ---- d. aws s3 ls --recursive -------------------------------------------------------
listing=$(s3 ls --recursive "s3://$BUCKET/")
keys=$(sed -E 's/^[0-9-]+ [0-9:]+ +[0-9]+ //' <<<"$listing")
want=(big.bin dataset/other/decoy.txt)
while IFS= read -r -d '' f; do want+=("dataset/tyre/${f#"$EXP"/}"); done < <(find "$EXP" -type f -print0)
while IFS= read -r -d '' f; do want+=("synced/${f#"$SRC"/}"); done < <(find "$SRC" -type f -print0)
for k in "${want[@]}"; do
    grep -qxF -- "$k" <<<"$keys" || fail "ls --recursive misses $k; got:"$'\n'"$listing"
done
nkeys=$(grep -c . <<<"$keys" || true)
((nkeys == ${#want[@]})) || fail "ls --recursive lists $nkeys keys, expected ${#want[@]}:"$'\n'"$listing"
! grep -q '\.tread' <<<"$listing" || fail "ls --recursive shows .tread:"$'\n'"$listing"
top=$(s3 ls "s3://$BUCKET/")
! grep -q '\.tread' <<<"$top" || fail "ls of the bucket root shows .tread:"$'\n'"$top"
pass "d. aws s3 ls --recursive lists exactly the ${#want[@]} expected keys, never .tread"

# ---- e. presigned URLs ------------------------------------------------------------
# Fetch with curl -sf; on failure, show the status and body.
curl_f() {
    curl -sf "$@" && return 0
    local rc=$?
    echo "curl $* failed (exit $rc); response:" >&2
    curl -s -i "$@" -o - >&2 || true
    echo >&2
    return "$rc"
}
presign() { "$PY" "$HERE/s3check.py" presign "$PORT" "$@"; }
url=$(presign get dataset/tyre/good/tyre_002.jpg 300)
curl_f -o "$TMP/presigned.get" "$url" || fail "presigned GET failed"
cmp "$EXP/good/tyre_002.jpg" "$TMP/presigned.get" || fail "presigned GET returned other bytes"
url=$(presign get "synced/ünïcødé/café crème.txt" 300)
curl_f -o "$TMP/presigned.get2" "$url" || fail "presigned GET of a unicode/space key failed"
cmp "$SRC/ünïcødé/café crème.txt" "$TMP/presigned.get2" || fail "presigned GET (unicode key) returned other bytes"
rand "$TMP/presigned.put" 65537
url=$(presign put "presigned/up load.bin" 300)
curl_f -X PUT --upload-file "$TMP/presigned.put" "$url" -o /dev/null || fail "presigned PUT failed"
s3 cp --only-show-errors "s3://$BUCKET/presigned/up load.bin" "$TMP/presigned.back"
cmp "$TMP/presigned.put" "$TMP/presigned.back" || fail "object written by presigned PUT reads back differently"
cmp "$TMP/presigned.put" "$VOL/presigned/up load.bin" || fail "presigned PUT: the volume file differs"
url=$(presign get dataset/tyre/good/tyre_002.jpg 1)
sleep 2
code=$(curl -s -o "$TMP/expired.body" -w '%{http_code}' "$url")
[[ $code == 403 ]] || fail "expired presigned GET: HTTP $code, expected 403; body: $(cat "$TMP/expired.body")"
rand "$TMP/form.bin" 1000
code=$("$PY" "$HERE/s3check.py" post "$PORT" "$TMP/form.bin" "forms/upload.bin")
[[ $code == 204 ]] || fail "presigned POST (a browser form's upload): HTTP $code, expected 204"
cmp "$TMP/form.bin" "$VOL/forms/upload.bin" || fail "presigned POST: the volume file differs"
rand "$TMP/form-big.bin" 2M
code=$("$PY" "$HERE/s3check.py" post "$PORT" "$TMP/form-big.bin" "forms/big.bin")
[[ $code == 4* && ! -e $VOL/forms/big.bin ]] ||
    fail "presigned POST over its policy's 1 MiB: HTTP $code, expected a 4xx and nothing stored"
code=$("$PY" "$HERE/s3check.py" post "$PORT" "$TMP/form.bin" "forms/named/\${filename}")
[[ $code == 204 ]] || fail "presigned POST to forms/named/\${filename}: HTTP $code, expected 204"
cmp "$TMP/form.bin" "$VOL/forms/named/form.bin" || fail "presigned POST: \${filename} did not become the file's name"
answer=$("$PY" "$HERE/s3check.py" post-created "$PORT" "$TMP/form.bin" "forms/created/\${filename}")
[[ $answer == "201 "*"<Key>forms/created/form.bin</Key>"* && -e $VOL/forms/created/form.bin ]] ||
    fail "a form asking for 201 to forms/created/\${filename}: $answer"
code=$("$PY" "$HERE/s3check.py" post "$PORT" "$TMP/form.bin" "forms/signed.bin" "forms/other.bin")
[[ $code == 403 && ! -e $VOL/forms/other.bin ]] ||
    fail "a form whose key breaks its policy: HTTP $code, expected 403 and nothing stored"
url=$(presign put "presigned/streamed.bin" 300)
code=$(curl -s -o "$TMP/streamed.body" -w '%{http_code}' -X PUT -T - "$url" <"$TMP/presigned.put")
[[ $code == 200 ]] || fail "a chunked PUT without Content-Length: HTTP $code; body: $(cat "$TMP/streamed.body")"
cmp "$TMP/presigned.put" "$VOL/presigned/streamed.bin" || fail "a chunked PUT without Content-Length stored other bytes"
code=$(curl -s -o "$TMP/streamed.body" -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT -T - "$EP/$BUCKET/signed/streamed.bin" <"$TMP/presigned.put")
[[ $code == 200 ]] || fail "a signed chunked PUT without Content-Length: HTTP $code; body: $(cat "$TMP/streamed.body")"
cmp "$TMP/presigned.put" "$VOL/signed/streamed.bin" || fail "a signed chunked PUT without Content-Length stored other bytes"
answer=$("$PY" "$HERE/s3check.py" date-signed "$PORT" "dataset/tyre/good/tyre_002.jpg")
[[ $answer == "200 $(stat -c %s "$EXP/good/tyre_002.jpg")" ]] ||
    fail "a SigV4 GET timed by Date alone: $answer"
pass "e. presigned GET (2 keys) and PUT work with curl; an expired URL gets 403; boto3's presigned POST uploads a form within its policy (\${filename} too) and not beyond (403 for a broken condition); a chunked PUT without Content-Length; SigV4 timed by Date"

# ---- f. boto3 upload_file / download_file (multipart) --------------------------------
rand "$TMP/mid.bin" 20M
"$PY" "$HERE/s3check.py" transfer "$PORT" "$TMP/mid.bin" "boto3/mid.bin" "$TMP/mid.down" >/dev/null ||
    fail "boto3 upload_file/download_file of 20 MB"
cmp "$TMP/mid.bin" "$TMP/mid.down" || fail "boto3 20 MB round trip differs"
cmp "$TMP/mid.bin" "$VOL/boto3/mid.bin" || fail "boto3 20 MB upload: the volume file differs"
pass "f. boto3 upload_file/download_file of 20 MB (multipart ETag, composite SHA256 checksum): byte-exact"

# ---- g. aws-chunked trailers: the same clients over HTTPS ---------------------------------
# Over plain HTTP botocore puts the CRC in a header; over HTTPS (its default for
# AWS) it streams uploads as aws-chunked with an unsigned x-amz-checksum-crc32
# trailer. Serve the same data dir over TLS with a self-signed cert and upload.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
TPORT=$(free_port)
TEP=https://127.0.0.1:$TPORT
CURL_CA=$TMP/tls.crt start_server "$TMP/server-tls.log" "$TEP" --listen "127.0.0.1:$TPORT" \
    --tls-cert "$TMP/tls.crt" --tls-key "$TMP/tls.key"
s3tls() { AWS_CA_BUNDLE=$TMP/tls.crt "$AWS" --endpoint-url "$TEP" s3 "$@"; }
rand "$TMP/tls-small.bin" 100001
s3tls cp --only-show-errors "$TMP/tls-small.bin" "s3://$BUCKET/tls/small.bin"
s3tls cp --only-show-errors "$TMP/mid.bin" "s3://$BUCKET/tls/mid.bin"
cmp "$TMP/tls-small.bin" "$VOL/tls/small.bin" || fail "aws-chunked PutObject over TLS: the volume file differs"
cmp "$TMP/mid.bin" "$VOL/tls/mid.bin" || fail "aws-chunked multipart over TLS: the volume file differs"
s3tls cp --only-show-errors "s3://$BUCKET/tls/mid.bin" "$TMP/tls-mid.down"
cmp "$TMP/mid.bin" "$TMP/tls-mid.down" || fail "20 MB download over TLS differs"
AWS_CA_BUNDLE=$TMP/tls.crt "$PY" "$HERE/s3check.py" transfer "$TEP" "$TMP/tls-small.bin" "tls/boto3-small.bin" \
    "$TMP/tls-small.down" >/dev/null || fail "boto3 upload_file/download_file over TLS"
cmp "$TMP/tls-small.bin" "$TMP/tls-small.down" || fail "boto3 round trip over TLS differs"
pass "g. over HTTPS (aws-chunked + CRC32 trailer): aws s3 cp 100 KB and 20 MB (multipart), boto3 upload_file: byte-exact"

# ---- h. the recipe's predictor: boto3 sagemaker-runtime against tread serve --------
# A model trained from the bucket, deployed to `tread serve`, invoked the way
# the recipe's notebook calls its SageMaker endpoint.
with_store() { TREAD_LOG=error AWS_ENDPOINT_URL=$EP "$TREAD_BIN" "$@" || fail "tread $* failed (exit $?)"; }
with_store data synth "s3://$BUCKET/predict-tyre" --count 32 --size 64 --seed 1 >/dev/null
MODEL=$(with_store train "s3://$BUCKET/predict-tyre" --size 64 --epochs 1 --batch-size 16 \
    --out "s3://$BUCKET/models/predict/" 2>/dev/null | sed -n 's/^model //p')
[[ $MODEL == s3://$BUCKET/models/predict/*/model.tar.gz ]] || fail "tread train printed no model URI"
SPORT=$(free_port)
TREAD_LOG=warn,aws_runtime=error AWS_ENDPOINT_URL=$EP "$TREAD_BIN" serve --listen "127.0.0.1:$SPORT" >"$TMP/serve.log" 2>&1 &
SERVER_PIDS+=("$!")
LOGS+=("$TMP/serve.log")
for ((i = 0; ; i++)); do
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$SPORT/ping" && break
    ((i < 100)) || fail "tread serve not answering after 10 s"
    sleep 0.1
done
with_store deploy "$MODEL" --endpoint tyre-quality-classifier --server "http://127.0.0.1:$SPORT" >/dev/null
IMAGE=$(find "$VOL/predict-tyre/good" -name '*.jpg' | sort | head -n1)
class=$("$PY" "$HERE/invoke.py" "http://127.0.0.1:$SPORT" tyre-quality-classifier "$IMAGE") ||
    fail "boto3 sagemaker-runtime invoke_endpoint against tread serve"
pass "h. boto3 sagemaker-runtime invoke_endpoint on a model trained from the bucket and deployed to tread serve: $class"

# ---- i. tritonclient[http], binary tensors in and out ----------------------------
# tritonclient sends and asks for tensors in the binary tensor extension by
# default; the answers must match the invocations route's for the same image.
triton_class=$("$PY" "$HERE/triton.py" "127.0.0.1:$SPORT" tyre-quality-classifier "$IMAGE") ||
    fail "tritonclient.http infer with binary_data=True against tread serve"
[[ $triton_class == "$class" ]] || fail "tritonclient predicted $triton_class, sagemaker-runtime $class"
pass "i. tritonclient[http] infer with binary_data=True (BYTES image and FP32 tensor in, binary outputs): $triton_class, probabilities as the invocations route's"

echo "PASS: all compatibility checks (${SECONDS}s)"
