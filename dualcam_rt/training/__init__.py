"""Offline training (the only package that imports torch): data, models, engine, evaluation, export.

``data`` cuts a dataset's sessions into clips, ``models`` holds one module per network family and
a registry, ``engine`` is the one training loop (teachers, students, distillation, DDP),
``evaluation`` runs the paper's tables and ``export`` writes ONNX students with model cards.
"""
