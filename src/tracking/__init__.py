"""Tracking: the MLflow store and the tracking seam (DVCLive and MLflow behind one object)."""
