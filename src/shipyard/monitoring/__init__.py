"""Monitoring: drift, data quality, performance and service health over tables and
prediction logs, with reports, Prometheus gauges and alerts.

Heavy libraries (numpy, scipy, pyarrow, DuckDB) load inside the functions that use them.
"""
