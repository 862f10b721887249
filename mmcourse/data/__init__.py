"""Data sets that work offline: the synthetic ShapesWorld and scikit-learn's 8x8 digits."""
