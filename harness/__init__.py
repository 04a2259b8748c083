"""Acceptance harness for LLM fine-tuning pipelines on Azure Machine Learning.

Importing this package stays cheap: heavy libraries load inside the backend that needs them.
"""

__version__ = "0.1.0"
