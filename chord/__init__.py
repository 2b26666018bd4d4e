"""chord, the application: the ``chord`` command and what composes the stages.

This is the top layer. It imports the shared core (``core``) and the stages (``assets``,
``flowgen``, ``planner``, ``sim``, ``real``); nothing imports it. ``chord.cli`` holds one module a
subcommand (they parse options, call the stages' library functions and print); ``chord.run`` is
``chord run`` (the whole chain on one scene) and ``chord.bench_full`` the whole-chain benchmark's
flow generation; ``chord.viz`` writes rerun recordings and plots of every stage. Importing it is
torch-free.
"""

from core import __version__

__all__ = ["__version__"]
