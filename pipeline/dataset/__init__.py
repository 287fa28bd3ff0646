"""From interim tables to the processed sequential dataset: filters, re-indexing, split, the one writer of its tables, exports."""
