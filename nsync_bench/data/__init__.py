"""Style datasets: manifests, fetching and importing, validation, captions, negative sets, data identity."""
