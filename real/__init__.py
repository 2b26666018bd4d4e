"""real: replay simulator-validated plans on a real arm, refusing anything unsafe before it moves.

Imports without torch, gsplat or diffusers.
"""
