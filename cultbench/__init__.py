"""cultbench: cultural survey instruments for language models, and aligners to a country's profile."""

__version__ = "0.1.0"
