"""Evaluation: one candidate scored on the splits against targets, the metric registry and its
metrics, the instrument kinds, and the validity diagnostics."""

from cultbench import moved_attribute

__getattr__ = moved_attribute(__name__)  # the former module of this name: its names, with a warning (cultbench.MOVED)
