"""Data preparation: converters into scpo's problems format, and inspection helpers."""
