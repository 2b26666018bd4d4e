"""Rerun recordings of every stage: scene, Gaussians, control points, flow, plan, robot, sim rollout.

Each stage module logs one kind of result into an open :class:`chord.viz.record.Recording`:

- :mod:`chord.viz.record`   opening a recording (an ``.rrd`` file or a live viewer), the timelines
- :mod:`chord.viz.scene`    scene meshes, table and camera
- :mod:`chord.viz.flow`     flow trajectories (line strips by object or part) and per-frame points
- :mod:`chord.viz.train`    loss curves from ``run.log``, Gaussians, control points, images, preview
- :mod:`chord.viz.robot`    an arm from its URDF, animated by joint trajectories
- :mod:`chord.viz.plan`     the planned end-effector path, grasps, the arm's joint states
- :mod:`chord.viz.sim`      a simulated rollout beside the flow it should follow; sim verdicts
- :mod:`chord.viz.run`      ``chord view``: one recording from whatever a run folder holds
- :mod:`chord.viz.plots`    static PNG plots (flow trajectories, loss curves) with matplotlib

Nothing here imports torch; rerun and matplotlib are imported inside the functions that use them.
"""
