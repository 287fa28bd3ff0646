"""ODMT pipeline library: every stage's logic, importable without side effects.

Stages (stages/) parse options and call into this package; nothing here reads argv or
params.yaml on its own.
"""
