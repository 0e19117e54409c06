"""Every recommender (the LLM model and each baseline) behind one interface, see ``base``."""
