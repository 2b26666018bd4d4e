"""assets: building a scene's objects and task scenes (a stage; it imports only ``core``).

Modules: ``intake`` (scans -> meshes), ``collision`` (convex pieces, V-HACD cache), ``urdf``
(writing an asset folder: meshes, URDF, ``asset.json``), ``bullet`` (PyBullet world and camera
conversion), ``reference`` (reference motion -> flow.npz, rendered RGB-D video, masks), ``tasks``
(the three task scenes). The object model, the digital cousins and the readers of what is written
here live in ``core`` (``core.asset``, ``core.cousins``, ``core.rgbd``); the command is
``chord assets`` (``chord.cli.assets``). Torch-free; docs/assets.md has examples.
"""
