"""Model, export, precision conversion and inference backends for sonostream."""
