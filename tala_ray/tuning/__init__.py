"""Experiment specs run on Ray Tune: spec -> trials -> best trial -> refit -> test -> registry."""
