"""A stock v2 client: Triton's tritonclient.http, at its default
binary_data=True, against `tread serve`. Sends an image as a BYTES input
and a preprocessed FP32 tensor, both in the binary tensor extension, and
checks the answers against the JSON the invocations route gives.

Usage: triton.py HOST:PORT ENDPOINT_NAME IMAGE
Prints the predicted class; exits non-zero on a wrong answer."""
import json
import sys
import urllib.request

import numpy as np
import tritonclient.http as httpclient

url, endpoint, image_path = sys.argv[1:4]
client = httpclient.InferenceServerClient(url=url)
assert client.is_server_live() and client.is_model_ready(endpoint)
assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
meta = client.get_model_metadata(endpoint)
size = meta["inputs"][0]["shape"][-1]

with open(image_path, "rb") as f:
    image = f.read()
request = urllib.request.Request(
    f"http://{url}/endpoints/{endpoint}/invocations", data=image, headers={"Content-Type": "image/jpeg"}
)
with urllib.request.urlopen(request) as response:
    reference = json.loads(response.read())
classes = list(reference["probabilities"])

# The image as raw bytes; outputs named with their (default) binary_data=True.
images = httpclient.InferInput("image", [1], "BYTES")
images.set_data_from_numpy(np.array([image], dtype=np.object_), binary_data=True)
assert images._get_tensor()["parameters"]["binary_data_size"] > len(image)
outputs = [httpclient.InferRequestedOutput("probabilities"), httpclient.InferRequestedOutput("class")]
result = client.infer(endpoint, [images], outputs=outputs)
for output in result.get_response()["outputs"]:
    assert "binary_data_size" in output.get("parameters", {}), result.get_response()
probabilities = result.as_numpy("probabilities")
assert probabilities.shape == (1, len(classes)), probabilities.shape
for name, p in zip(classes, probabilities[0]):
    assert abs(p - reference["probabilities"][name]) < 1e-5, (name, p, reference)
predicted = result.as_numpy("class")[0].decode()
assert predicted == reference["class"], (predicted, reference)

# A preprocessed FP32 tensor, no outputs named (binary_data_output in the request).
tensor = httpclient.InferInput("input", [2, 3, size, size], "FP32")
tensor.set_data_from_numpy(np.random.default_rng(0).standard_normal((2, 3, size, size), dtype=np.float32))
result = client.infer(endpoint, [tensor])
probabilities = result.as_numpy("probabilities")
assert probabilities.shape == (2, len(classes)), probabilities.shape
assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4), probabilities
assert [c.decode() for c in result.as_numpy("class")] == [classes[i] for i in probabilities.argmax(axis=1)]
print(predicted)
