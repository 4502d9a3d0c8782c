"""Documents rendered from the pipeline's committed outputs (the README's generated sections)."""
