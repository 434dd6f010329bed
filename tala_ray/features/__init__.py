"""Point-in-time features: the shared definitions, the Ray Data batch pipeline and the online path."""
