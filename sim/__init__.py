"""sim: validate plans in PyBullet and run success-rate benchmarks.

Imports without torch, gsplat or diffusers.
"""
