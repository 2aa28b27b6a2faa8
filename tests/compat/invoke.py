"""The recipe's predictor path: boto3's sagemaker-runtime client, pointed at
`tread serve`, sends an image to an endpoint and reads the JSON answer.

Usage: invoke.py ENDPOINT_URL ENDPOINT_NAME IMAGE
Prints the predicted class; exits non-zero on a wrong answer."""
import json
import sys

import boto3

url, endpoint, image = sys.argv[1:4]
runtime = boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1")
with open(image, "rb") as f:
    response = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="image/jpeg", Body=f.read())
answer = json.loads(response["Body"].read())
assert response["ContentType"].startswith("application/json"), response["ContentType"]
assert answer["class"] in answer["probabilities"], answer
assert abs(sum(answer["probabilities"].values()) - 1.0) < 1e-4, answer
assert answer["endpoint"] == endpoint, answer
print(answer["class"])
