"""Training data read from recorded runs."""
