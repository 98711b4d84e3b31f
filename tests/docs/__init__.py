"""The documentation's code examples, run against a real database (see ``blocks.py``)."""
