"""Experiment machinery: sweep, search and claim specs, the DVC queue, adaptive seeds, shared
studies on PostgreSQL, pruning."""
