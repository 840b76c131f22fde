"""knpu software models: the NumPy golden model (spec of the arithmetic) and friends."""
