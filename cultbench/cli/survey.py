"""Placeholder until this command module lands."""
COMMANDS = []
