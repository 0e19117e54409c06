"""Turn outside data (MovieLens, synthetic logs) into raw partitions."""
