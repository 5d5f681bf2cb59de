"""Renderers: records in, text out (table like ss, JSON, CSV). Pure functions."""
