# pose3d for GPU hosts: the locked environment, the shipped lifter, `pose3d` as the entrypoint.
#
#   docker build -t pose3d .
#   docker build --build-arg FETCH_WEIGHTS="yolo11n hrnet-w32" -t pose3d .   # also bake YOLO + mmpose
#   docker run --rm --init --gpus all -v "$PWD":/data -u "$(id -u):$(id -g)" pose3d batch /data/in --out /data/out
#
# torch's wheels bring their own CUDA 13 libraries; the host needs an NVIDIA driver for CUDA 13 and the
# NVIDIA container toolkit. README.md, "Folders of clips", has the Ray cluster recipe.
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM nvidia/cuda:13.0.0-runtime-ubuntu24.04

# Names for `pose3d weights fetch` (or "--all") to download while building; empty: none (the bundled
# MediaPipe backend and the shipped lifter work offline).
ARG FETCH_WEIGHTS=""

ENV DEBIAN_FRONTEND=noninteractive \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    POSE3D_WEIGHTS_DIR=/opt/pose3d/weights \
    PATH=/opt/pose3d/.venv/bin:$PATH \
    HOME=/tmp/home \
    XDG_CACHE_HOME=/tmp/cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    YOLO_CONFIG_DIR=/tmp/ultralytics \
    YOLO_OFFLINE=1

# OpenCV and MediaPipe load libGL / GLib / EGL; ffmpeg comes with the imageio-ffmpeg wheel.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libgl1 libglib2.0-0t64 libegl1 \
    && rm -rf /var/lib/apt/lists/*

COPY --from=uv /uv /uvx /usr/local/bin/
RUN uv python install 3.11

WORKDIR /opt/pose3d
COPY pyproject.toml uv.lock README.md ./
COPY pipeline/ pipeline/
COPY configs/ configs/
COPY weights/ weights/
COPY examples/ examples/

# The same install command as CI (.ci/run) and the README.
RUN UV_PYTHON_DOWNLOADS=never uv sync --frozen \
    && uv cache clean

# FETCH_WEIGHTS is split into model names on purpose.
# hadolint ignore=SC2086
RUN if [ -n "$FETCH_WEIGHTS" ]; then YOLO_OFFLINE=0 pose3d weights fetch $FETCH_WEIGHTS; fi

# Not root; any other uid works too (`docker run -u "$(id -u):$(id -g)"`): everything it writes goes under /tmp.
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin pose3d \
    && mkdir -p /data /tmp/home \
    && chmod 1777 /tmp/home
USER 10001:10001
WORKDIR /data

ENTRYPOINT ["pose3d"]
CMD ["--help"]
