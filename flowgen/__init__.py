"""flowgen: distil 4D object motion from a video model into dense 3D object flow.

Importing this package is cheap and torch-free: ``core.flow`` (the flow.npz contract) is read
by the planner. Modules that need torch import it themselves.
"""
