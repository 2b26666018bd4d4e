"""core: what every stage of chord shares, and nothing else. It imports no stage.

- ``scene``: the scene spec (``scene.yaml``, schema ``chord.scene``); ``asset``, ``cousins`` and
  ``cousin_params``: object models and the digital cousins a scene may describe by measurements;
  ``mesh``: mesh files (and an object's mesh from the scene) in metres.
- File contracts: ``contract`` (versioned .npz + JSON meta machinery), ``flow`` (``flow.npz``),
  ``plan`` (``plan.npz``), ``record`` (a flow run's ``config.json``), ``rgbd`` (a reference
  RGB-D video: frames, ``masks.npz``, ``depth.npz``), ``asset.read_record`` (``asset.json``).
- ``transforms`` (poses, quaternions wxyz), ``errors`` (ChordError and ContractError),
  ``atomic`` (atomic writes of files and folders).

The layers above it: the stages (``assets``, ``flowgen``, ``planner``, ``sim``, ``real``) import
core and the stages below them; the application (``chord``: the command, ``chord run``, views)
imports everything. ``tests/test_layers.py`` enforces the direction. Torch-free.
"""

__version__ = "0.1.0"
