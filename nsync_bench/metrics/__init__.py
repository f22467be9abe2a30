"""Image metrics: FID, KID, CMMD, CSD (one module each, a pure function at the heart of each)."""
