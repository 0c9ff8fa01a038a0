"""Infrastructure: errors, files, manifests, settings, shards, rows, models, registries. Imports nothing above it."""
