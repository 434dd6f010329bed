"""Credit models, their preprocessing and metrics (uplift models live in `uplift.py`)."""
