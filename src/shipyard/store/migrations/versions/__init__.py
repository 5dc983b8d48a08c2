"""One file per schema revision; 0001 is the baseline (the schema before migrations existed)."""
