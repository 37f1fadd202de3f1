"""Explainer-evaluation benchmark harness for image classifiers (``python -m benchmark``)."""

__version__ = "0.1.0"
