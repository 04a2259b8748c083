"""Code that runs inside the fine-tune job process, started as
``python -m harness.backends.local.training --spec JOB_DIR/spec.json`` (directly for one
process, as each rank of ``torchrun`` for several), and the one-time build of the tiny
foundation model (``python -m harness.backends.local.training.tiny_model``).

The harness imports only the light parts: the parameter rules (to refuse bad values before a
job starts), the TRL/peft argument mapping and the tiny model's recipe. Heavy imports happen
inside functions, except in ``metrics``, which only the job process imports (its trainer
callback subclasses transformers' ``TrainerCallback``).
"""
