"""BlazePose's landmark model on each detected person's region (the ``offline`` backend's keypointer).

The landmark model wants a region aligned the way BlazePose's own person detector gives it: centred on
the hips, turned so that the body points up, 2.5 body radii wide. MediaPipe's pose solution takes the
detector's most confident find, which in a crop holding two people is often the neighbour. Here
BlazePose's detector runs on each tracked person's square crop and the find whose hips lie nearest the
crop's centre gives the region (none near it: the upright square around our detector's box). The
landmark model then runs on that region of the full frame, through a MediaPipe graph of the calculators
the solution uses after its detector (image to tensor, TFLite inference, landmark decoding, projection
back to the image). The model file is a setting: ``lite``, ``full`` (the one inside the ``mediapipe``
wheel) or ``heavy`` (shipped in ``weights/``, see ``weights/BLAZEPOSE_MODEL_CARD.md``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from google.protobuf import text_format

from pipeline.assets import shipped_weights
from pipeline.errors import ConfigError, ModelError, ShapeError
from pipeline.twod.blazepose import (
    MediaPipeConfig,
    MediaPipeGraphs,
    box_region,
    landmarks_to_person,
    native_stderr_silenced,
    pixel_landmarks,
    square_crop,
)
from pipeline.twod.detect import box_iou

MODELS = ("lite", "full", "heavy")
INPUT_SIZE = 256                  # the landmark models' square input, pixels
DETECTOR_GRAPH = """
input_stream: "IMAGE:image"
output_stream: "DETECTIONS:detections"
node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:detections" }
"""


@dataclass(frozen=True)
class CropConfig:
    """BlazePose landmarks on each detected person's region.

    Attributes:
        model: Landmark model: "lite", "full" or "heavy" (slower, more accurate; measured in docs/twod.md).
        scale: Side of the square crop BlazePose's detector looks at, and of the fallback region, over the
            person box's longer side.
        crop_size: Side the crop is resized to for BlazePose's detector, pixels.
        min_detection_confidence: BlazePose's detector's threshold (MediaPipe's default; 0.3 measured worse on
            the validation subjects: a weak find can give a region turned the wrong way).
        max_offset: A find counts as the tracked person when its hips lie within this fraction of the crop's
            side from the crop's centre.
        min_overlap: The box around the landmarks must overlap the detector's box by this IoU at least (else
            the model followed someone else, and the box gets no keypoints this frame).
    """

    model: str = "full"
    scale: float = 1.25
    crop_size: int = 256
    min_detection_confidence: float = 0.5
    max_offset: float = 0.25
    min_overlap: float = 0.3

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"CropConfig.model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.scale < 1 or self.crop_size < 64 or not 0 < self.max_offset <= 1 or not 0 <= self.min_overlap < 1 \
                or not 0 < self.min_detection_confidence < 1:
            raise ConfigError(f"bad CropConfig: scale={self.scale}, crop_size={self.crop_size}, max_offset="
                              f"{self.max_offset}, min_overlap={self.min_overlap}, min_detection_confidence="
                              f"{self.min_detection_confidence}")


def landmark_model(name: str) -> Path:
    """Path of a BlazePose landmark model: ``full`` from the mediapipe wheel, ``lite``/``heavy`` shipped.

    Raises:
        ModelError: the file is missing (a broken install).
    """
    if name == "full":
        import mediapipe  # deferred: slow to import, only the offline backend needs it

        path = Path(mediapipe.__file__).parent / "modules" / "pose_landmark" / "pose_landmark_full.tflite"
    else:
        path = shipped_weights(f"pose_landmark_{name}.tflite")
    if not path.is_file():
        raise ModelError(f"BlazePose {name} landmark model not found at {path} (reinstall pose3d)")
    return path


def graph_config(model: Path) -> str:
    """The MediaPipe graph (text format): image + region -> 33 landmarks, image-normalised."""
    return f"""
input_stream: "IMAGE:image"
input_stream: "ROI:roi"
input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
output_stream: "LANDMARKS:landmarks"
node {{ calculator: "ImagePropertiesCalculator" input_stream: "IMAGE_CPU:image" output_stream: "SIZE:image_size" }}
node {{
  calculator: "ImageToTensorCalculator"
  input_stream: "IMAGE:image" input_stream: "NORM_RECT:roi"
  output_stream: "TENSORS:input_tensors" output_stream: "LETTERBOX_PADDING:letterbox_padding"
  output_stream: "MATRIX:transformation_matrix"
  options {{ [mediapipe.ImageToTensorCalculatorOptions.ext] {{
    output_tensor_width: {INPUT_SIZE} output_tensor_height: {INPUT_SIZE} keep_aspect_ratio: true
    output_tensor_float_range {{ min: 0.0 max: 1.0 }} }} }}
}}
node {{
  calculator: "InferenceCalculator"
  input_stream: "TENSORS:input_tensors" output_stream: "TENSORS:output_tensors"
  options {{ [mediapipe.InferenceCalculatorOptions.ext] {{
    model_path: {json.dumps(str(model))} delegate {{ xnnpack {{}} }} }} }}
}}
node {{
  calculator: "TensorsToPoseLandmarksAndSegmentation"
  input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
  input_stream: "TENSORS:output_tensors"
  output_stream: "LANDMARKS:roi_landmarks" output_stream: "AUXILIARY_LANDMARKS:roi_auxiliary_landmarks"
  output_stream: "WORLD_LANDMARKS:roi_world_landmarks" output_stream: "SEGMENTATION_MASK:roi_segmentation_mask"
}}
node {{
  calculator: "PoseLandmarksAndSegmentationInverseProjection"
  input_stream: "IMAGE_SIZE:image_size" input_stream: "NORM_RECT:roi"
  input_stream: "LETTERBOX_PADDING:letterbox_padding" input_stream: "MATRIX:transformation_matrix"
  input_stream: "LANDMARKS:roi_landmarks" input_stream: "AUXILIARY_LANDMARKS:roi_auxiliary_landmarks"
  input_stream: "WORLD_LANDMARKS:roi_world_landmarks" input_stream: "SEGMENTATION_MASK:roi_segmentation_mask"
  output_stream: "LANDMARKS:landmarks" output_stream: "AUXILIARY_LANDMARKS:auxiliary_landmarks"
  output_stream: "WORLD_LANDMARKS:world_landmarks" output_stream: "SEGMENTATION_MASK:segmentation_mask"
}}
"""


def aligned_region(hips: np.ndarray, top: np.ndarray) -> tuple[float, float, float, float]:
    """The region BlazePose's detector gives the landmark model (as MediaPipe's PoseDetectionToRoi does).

    Args:
        hips: (2,) the hips' centre, pixels.
        top: (2,) the point one body radius from it towards the head, pixels.

    Returns:
        (x centre px, y centre px, side px, rotation rad): centred on the hips, 2.5 body radii wide, turned
        so that ``top`` is straight up.
    """
    (cx, cy), (tx, ty) = hips, top
    rotation = math.pi / 2 - math.atan2(-(ty - cy), tx - cx)
    rotation -= 2 * math.pi * math.floor((rotation + math.pi) / (2 * math.pi))  # into [-pi, pi)
    return float(cx), float(cy), 2.5 * math.hypot(tx - cx, ty - cy), rotation


class BlazePoseCrops(MediaPipeGraphs):
    """COCO-17 keypoints of detected people: BlazePose's landmark model on each person's aligned region.

    Use as a context manager (or call :meth:`close`) to release the two MediaPipe graphs.
    """

    def __init__(self, config: CropConfig | None = None) -> None:
        try:
            # deferred, as are the next two: mediapipe is slow to import and only the offline backend needs it
            from mediapipe.framework import calculator_pb2
            from mediapipe.framework.formats import rect_pb2  # deferred (mediapipe)
            from mediapipe.python.solution_base import SolutionBase  # deferred (mediapipe)
        except ImportError as exc:  # pragma: no cover - mediapipe is a declared dependency
            raise ModelError(f"the offline 2D backend needs the mediapipe package ({exc})") from None
        self.config = config or CropConfig()
        self._rect = rect_pb2.NormalizedRect
        self._mapping = MediaPipeConfig(box_expand=0.0)
        graph = text_format.Parse(graph_config(landmark_model(self.config.model)),
                                  calculator_pb2.CalculatorGraphConfig())
        detector = text_format.Parse(DETECTOR_GRAPH, calculator_pb2.CalculatorGraphConfig())
        with native_stderr_silenced():  # the TFLite delegate's INFO lines go straight to fd 2
            self._graph = SolutionBase(graph_config=graph, side_inputs={"enable_segmentation": False},
                                       outputs=["landmarks"])
            threshold = {"posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh":
                         self.config.min_detection_confidence}
            self._detector = SolutionBase(graph_config=detector, calculator_params=threshold, outputs=["detections"])

    def close(self) -> None:
        """Release the MediaPipe graphs (idempotent)."""
        if self._graph is not None:
            self._graph.close()
            self._detector.close()
            self._graph = None

    def estimate(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints of the people in ``boxes``.

        Args:
            image: (H, W, 3) uint8 BGR frame.
            boxes: (N, 4) x1 y1 x2 y2 pixels, one person each.

        Returns:
            keypoints (N, 17, 2) float32 frame pixels (NaN where the model found no person, or another
            person, in the region), scores (N, 17) float32 in [0, 1] (0 there).
        """
        if self._graph is None:
            raise ModelError("BlazePoseCrops was closed")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ShapeError(f"image must be (H, W, 3) uint8 BGR, got {image.shape} {image.dtype}")
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        keypoints = np.full((len(boxes), 17, 2), np.nan, np.float32)
        scores = np.zeros((len(boxes), 17), np.float32)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        for i, box in enumerate(boxes):
            found = self._landmarks(rgb, self._region(rgb, box))
            if found is None:
                continue
            person = landmarks_to_person(found, image.shape[1], image.shape[0], self._mapping)
            if box_iou(person.box[None], box[None])[0, 0] >= self.config.min_overlap:
                keypoints[i], scores[i] = person.keypoints, person.scores
        return keypoints, scores

    def _region(self, rgb: np.ndarray, box: np.ndarray) -> tuple[float, float, float, float]:
        """The aligned region of the person at the centre of ``box``'s crop, else the square around the box."""
        size = self.config.crop_size
        crop, to_image = square_crop(rgb, box, self.config.scale, size)
        best, nearest = None, self.config.max_offset * size
        for detection in self.process_quietly(self._detector, {"image": crop}).detections or ():
            points = np.array([[k.x, k.y] for k in detection.location_data.relative_keypoints[:2]]) * size
            offset = float(np.linalg.norm(points[0] - size / 2))
            if offset <= nearest:
                best, nearest = points, offset
        if best is None:
            return box_region(box, self.config.scale)
        return aligned_region(*(best @ to_image[:, :2].T + to_image[:, 2]))

    def _landmarks(self, rgb: np.ndarray, region: tuple[float, float, float, float]) -> np.ndarray | None:
        """(33, 3) [x px, y px, confidence] landmarks of the person in a region, or None."""
        h, w = rgb.shape[:2]
        cx, cy, side, rotation = region
        roi = self._rect(x_center=cx / w, y_center=cy / h, width=side / w, height=side / h, rotation=rotation)
        result = self.process_quietly(self._graph, {"image": rgb, "roi": roi})
        if result.landmarks is None:
            return None
        return pixel_landmarks(result.landmarks, w, h)
