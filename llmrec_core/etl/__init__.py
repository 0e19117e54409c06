"""Spark transforms of the ETL: pure functions DataFrame -> DataFrame, no I/O."""
