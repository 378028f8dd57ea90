"""Helpers the chapter notebooks call around the science: set-up, tables, plotting and the metrics JSON."""
