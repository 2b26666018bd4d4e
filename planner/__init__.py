"""planner: turn dense object flow into a grasp, an end-effector path and a joint trajectory.

Imports without torch, gsplat or diffusers.
"""
