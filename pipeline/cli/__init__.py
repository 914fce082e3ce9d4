"""The ``pose3d`` command line: parses arguments, draws progress and calls the library."""


