"""Run an ONNX graph exported by `connpack unpack --onnx` on raw pixels, with onnxruntime alone (no connpack):
python examples/onnx_raw_pixels.py model.onnx t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"""
import gzip, json, sys
import numpy as np
import onnxruntime as ort

model, images, labels = sys.argv[1:4]  # the idx files as distributed (.gz or not)
read = lambda p, skip: np.frombuffer((gzip.open if p.endswith(".gz") else open)(p, "rb").read(), np.uint8, offset=skip)
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
x = read(images, 16).reshape(-1, 1, 28, 28) / np.float32(255)  # raw pixels in [0, 1]: the graph normalises them
pred = sess.run(None, {sess.get_inputs()[0].name: x})[0].argmax(1)
meta = sess.get_modelmeta().custom_metadata_map  # dataset, classes, input, mean, std, seed, connpack_version
print(f"accuracy {(pred == read(labels, 8)).mean():.2%} on {meta['dataset']}; first: {json.loads(meta['classes'])[pred[0]]}")
