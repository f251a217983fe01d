"""Export registered models for the edge: an ONNX package with a manifest and a parity report.

Example:
    >>> from shipyard.export import export_onnx
    >>> result = export_onnx("cancer@champion", "edge/cancer")  # doctest: +SKIP
    >>> result.parity["model.onnx"]["max_abs_diff"]  # doctest: +SKIP
    1.2e-07

onnx, onnxruntime, skl2onnx and torch load when a model is exported, not on import.
"""

from shipyard.export.onnx import ExportResult, ParityError, export_onnx

__all__ = ["ExportResult", "ParityError", "export_onnx"]
