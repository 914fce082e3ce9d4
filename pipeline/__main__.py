"""``python -m pipeline …``: the same command line as ``pose3d …``."""

from pipeline.cli.app import app

if __name__ == "__main__":
    app(prog_name="pose3d")
