"""Code that runs inside the fine-tune job process, started as
``python -m harness.backends.local.training --spec JOB_DIR/spec.json`` (and the one-time
build of the tiny foundation model, ``python -m harness.backends.local.training.tiny_model``).

The harness imports only the light parts: the parameter rules (to refuse bad values before a
job starts) and the tiny model's recipe. Heavy imports happen inside functions.
"""
