"""Thin Typer commands, one module per stage: parse options, load params, call pipeline/."""
