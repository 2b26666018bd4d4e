"""The ``chord`` command: ``main`` dispatches to one module a subcommand.

Each subcommand module parses its options (tyro, from the stage's config dataclasses), calls the
stage's library functions and prints what they return; it decides nothing a Python caller of the
library would not get too.
"""
