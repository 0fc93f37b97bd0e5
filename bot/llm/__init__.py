"""Language-model and embedding providers behind small protocols."""
