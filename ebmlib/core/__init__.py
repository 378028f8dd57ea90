"""The machinery every chapter stands on. Nothing here imports ``ebmlib.data``, ``ebmlib.notebook`` or a chapter."""
