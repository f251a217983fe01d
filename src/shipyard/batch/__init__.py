"""Batch inference: score a Parquet/CSV file or a dataset version with a registered model.

Example:
    >>> from shipyard.batch import predict
    >>> result = predict("churn@champion", "customers.parquet", "scores.parquet")  # doctest: +SKIP
    >>> result.dataset.ref  # doctest: +SKIP
    'churn-predictions@1'

pyarrow, pandas and the model's library load when :func:`predict` runs, not on import.
"""

from shipyard.batch.predict import EXECUTORS, PredictResult, predict

__all__ = ["EXECUTORS", "PredictResult", "predict"]
