"""Capture: sources (live interface, capture file) feeding per-interface rings of batches."""
