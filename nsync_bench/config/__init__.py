"""A run's configuration: the typed `RunConfig`, and the profiles and protocols it is resolved from."""
