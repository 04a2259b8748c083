"""What the suites share: the in-memory fake backend, the Azure ML fake, recorded run events,
the pytester project of the plugin's tests, and the data files the fakes serve (``DATA``: the
fakes' own copies, never the package's, so a fake shares no data with the code it checks)."""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
