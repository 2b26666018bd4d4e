"""chord: make a robot do what a sentence says to objects it has never seen.

The pipeline is four stages, one package each: ``flowgen`` (4D object flow from a video model),
``planner`` (flow to joint trajectory), ``sim`` (PyBullet validation) and ``real`` (safe replay on
an arm). This package holds what they share: the scene spec, the file-contract machinery and the
``chord`` command. It never imports torch.
"""

__version__ = "0.1.0"
