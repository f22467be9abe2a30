"""One run end to end: preflight, training, evaluation images, scoring, learning curves, the real-data floor."""
