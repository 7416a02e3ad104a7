"""Finished one-off measurements, kept runnable; the suite (`python -m bench`) does not use them."""
