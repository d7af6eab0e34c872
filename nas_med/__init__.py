"""nas-med: neural architecture search for small medical image datasets."""
__version__ = "0.1.0"
