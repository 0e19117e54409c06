"""Nightly scoring: exact top-K over the whole catalogue, filters, reasons, publication."""
