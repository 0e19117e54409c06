"""llmrec: a batch recommender powered by a language model."""

__version__ = "0.1.0"
