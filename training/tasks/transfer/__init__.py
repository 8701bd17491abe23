"""Cross-sensor transfer: translate a labelled source run with an m2m model, train a target tactile_force model."""
