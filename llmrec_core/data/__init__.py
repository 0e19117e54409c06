"""Training and evaluation data: the lake snapshot of a day as arrays, and the protocols."""
