"""Statistics: paired comparisons across shared seeds, and the power of those comparisons."""
