"""Code that runs inside the local endpoint's inference server process, started as
``python -m harness.backends.local.server`` (``azmlinfsrv`` bound to loopback): the scoring
script, the chat-completion contract it enforces and the text generator.

The harness only starts that process; the names below are the interface between the two.
Importing this package imports nothing heavy.
"""

BIND_HOST = "127.0.0.1"
KEYS_ENV = "HARNESS_ENDPOINT_KEYS"  # the endpoint keys the scoring script accepts (never logged)
DEVICE_ENV = "HARNESS_DEVICE"  # the torch device the model is served on
EXIT_INIT_FAILED = 3  # azmlinfsrv's exit code when init() raised
