"""Monitoring: the prediction log (written by serving, read by `tala-ray log read`) and SLO checks."""
