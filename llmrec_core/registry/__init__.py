"""The model registry side: the trained bundle, the promotion gate, the MLflow pyfunc."""
