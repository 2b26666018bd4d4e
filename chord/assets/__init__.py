"""Object assets and task scenes: digital cousins, scanned-mesh intake, ground-truth references.

Modules: ``params`` (what a user measures), ``cousins`` (params -> meshes), ``intake`` (scans ->
meshes), ``model`` (links and joints), ``collision`` (convex pieces, V-HACD cache), ``urdf``
(writing an asset folder), ``bullet`` (PyBullet world and camera conversion), ``reference``
(reference motion -> flow.npz, video, masks), ``tasks`` (the three task scenes), ``cli``
(``chord assets``). Torch-free; docs/assets.md has examples.
"""
