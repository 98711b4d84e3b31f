"""Example applications built on wxdata."""
