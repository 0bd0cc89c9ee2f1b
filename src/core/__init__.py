"""The core library: params, paths, data, models, the training loop, metrics, statistics and the
decisions, figures, the vocabulary (names, statuses). Imports nothing of tunelab above it."""
