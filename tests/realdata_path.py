"""The recordings' folder for the tests: the same lookup the demo uses (``pipeline.realdata``)."""

from pipeline.realdata import realdata_dir

__all__ = ["realdata_dir"]
