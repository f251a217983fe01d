"""The edge runner: score a CSV with an exported ONNX package, needing only numpy and onnxruntime.

Run it as ``python -m shipyard.edge DIR input.csv [--output preds.csv]``; the package also holds
a copy, ``shipyard_edge.py``, for devices without Shipyard. Importing this package loads
neither numpy nor onnxruntime; :class:`EdgeModel` does when it is created.
"""

from shipyard.edge.runner import EdgeError, EdgeModel, main

__all__ = ["EdgeError", "EdgeModel", "main"]
