"""Benchmarks of the scorer's speed and precision, for index and distribution instruments."""

from cultbench import moved_attribute

__getattr__ = moved_attribute(__name__)  # the former module of this name: its names, with a warning (cultbench.MOVED)
